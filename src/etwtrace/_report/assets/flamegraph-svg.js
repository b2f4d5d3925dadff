// The SVG flame graph's interaction, in the manner of flamegraph.pl: every frame is a
// <g class="frame"> with its rect, label and <title>, laid out at full width by svg.py. A
// frame carries its tree node number (data-n), the last node of its subtree (data-e), its
// depth (data-d) and its full-width x and width (data-x, data-w), so zooming is a matter of
// rescaling its descendants, stretching its ancestors and hiding the rest.
(function () {
  "use strict";
  const svg = document.documentElement;
  const config = JSON.parse(document.getElementById("flamegraph-config").textContent);
  const frames = Array.from(document.querySelectorAll("g.frame")); // pre-order
  const details = document.getElementById("details");
  const matchedText = document.getElementById("matched");
  const resetButton = document.getElementById("reset");
  const searchButton = document.getElementById("search");
  let zoomed = null;
  let searchTerm = "";

  for (const frame of frames) {
    frame.n = +frame.getAttribute("data-n");
    frame.e = +frame.getAttribute("data-e");
    frame.d = +frame.getAttribute("data-d");
    frame.x0 = +frame.getAttribute("data-x");
    frame.w0 = +frame.getAttribute("data-w");
    frame.rect = frame.querySelector("rect");
    frame.label = frame.querySelector("text");
    frame.fill = frame.rect.getAttribute("fill");
    frame.fullLabel = frame.querySelector("title").textContent.split("\n")[0];
  }

  function fit(text, width) {
    const chars = Math.floor((width - 6) / (config.fontSize * config.fontWidth));
    if (chars < 3) return "";
    return text.length <= chars ? text : text.slice(0, chars - 2) + "..";
  }

  function place(frame, x, width) {
    frame.rect.setAttribute("x", (config.left + x).toFixed(2));
    frame.rect.setAttribute("width", Math.max(width - 0.5, 0.1).toFixed(2));
    frame.label.setAttribute("x", (config.left + x + 3).toFixed(2));
    frame.label.textContent = fit(frame.fullLabel, width);
  }

  function zoom(target) {
    zoomed = target.n === 0 ? null : target;
    const scale = config.width / target.w0;
    for (const frame of frames) {
      if (frame.n >= target.n && frame.n <= target.e) {
        frame.style.display = "";
        frame.classList.remove("ancestor");
        place(frame, (frame.x0 - target.x0) * scale, frame.w0 * scale);
      } else if (frame.n < target.n && frame.e >= target.n) {
        frame.style.display = "";
        frame.classList.add("ancestor");
        place(frame, 0, config.width);
      } else {
        frame.style.display = "none";
      }
    }
    resetButton.style.display = zoomed ? "" : "none";
  }

  function reset() {
    zoom(frames[0]);
  }

  // The matched share counts each stack once: a match under a matched frame adds nothing.
  function search(term) {
    searchTerm = (term || "").trim();
    const needle = searchTerm.toLowerCase();
    let matched = 0;
    let insideEnd = -1;
    for (const frame of frames) {
      const hit = needle !== "" && frame.n > 0 && frame.fullLabel.toLowerCase().includes(needle);
      frame.rect.setAttribute("fill", hit ? config.matchColor : frame.fill);
      frame.classList.toggle("matched", hit);
      if (hit && frame.n > insideEnd) { matched += frame.w0; insideEnd = frame.e; }
    }
    const share = frames.length && frames[0].w0 ? matched / frames[0].w0 : 0;
    matchedText.setAttribute("data-share", needle ? String(share) : "");
    matchedText.textContent = needle ? "Matched: " + (100 * share).toFixed(2) + "%" : "";
    searchButton.textContent = needle ? "Clear search" : "Search";
  }

  function askSearch() {
    if (searchTerm) { search(""); return; }
    const term = window.prompt("Search for (a part of a frame's label):", "");
    if (term !== null) search(term);
  }

  svg.addEventListener("click", (event) => {
    const frame = event.target.closest && event.target.closest("g.frame");
    if (frame) zoom(frame);
  });
  svg.addEventListener("mouseover", (event) => {
    const frame = event.target.closest && event.target.closest("g.frame");
    details.textContent = frame ? frame.querySelector("title").textContent.replace(/\n/g, " · ") : " ";
  });
  resetButton.addEventListener("click", (event) => { event.stopPropagation(); reset(); });
  searchButton.addEventListener("click", (event) => { event.stopPropagation(); askSearch(); });
  window.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "f") { event.preventDefault(); askSearch(); }
    else if (event.key === "Escape") reset();
  });

  // For the tests and the console.
  window.flamegraph = {
    zoomed: () => (zoomed ? zoomed.n : 0),
    search: search,
    reset: reset,
  };
  reset();
})();
