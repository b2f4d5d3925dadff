// The HTML report's flame graphs: one icicle per metric, drawn on a canvas.
//
// The page embeds its data as JSON in the "flamegraph-data" script element: a frame table (label,
// kind, location, colour per frame) and, per metric, the merged call tree flat in pre-order
// (parallel arrays f: frame number or -1 for the root, v: total weight, d: depth); see
// flamegraph.py. Only frames at least MIN_WIDTH pixels wide are drawn: a parent's narrower
// children (they sit at its right, children being heaviest first) are drawn as one grey block,
// so a 50,000-node tree draws a few thousand rectangles, and no weight is lost from any total.
(function () {
  "use strict";

  const ROW_HEIGHT = 18;
  const MIN_WIDTH = 1.5; // px: narrower frames are drawn merged with their narrow siblings
  const FONT = "12px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
  const KINDS = ["python", "native", "kernel", "tag"];
  const KIND_TITLES = { python: "Python", native: "native", kernel: "kernel", tag: "stack tag" };

  const data = JSON.parse(document.getElementById("flamegraph-data").textContent);
  const frames = data.frames; // [label, kind index, location, colour]
  const canvas = document.getElementById("flamegraph-canvas");
  const context = canvas.getContext("2d");
  const tip = document.getElementById("flamegraph-tooltip");
  const searchBox = document.getElementById("flamegraph-search");
  const matchedText = document.getElementById("flamegraph-matched");
  const resetButton = document.getElementById("flamegraph-reset");
  const zoomText = document.getElementById("flamegraph-zoomed");

  // One call tree, with the links the flat pre-order arrays imply.
  class Tree {
    constructor(metric) {
      this.metric = metric;
      const count = metric.tree.f.length;
      this.count = count;
      this.frame = Int32Array.from(metric.tree.f);
      this.total = Float64Array.from(metric.tree.v); // ns totals can pass 2**31
      this.depth = Int32Array.from(metric.tree.d);
      this.parent = new Int32Array(count).fill(-1);
      this.firstChild = new Int32Array(count).fill(-1);
      this.nextSibling = new Int32Array(count).fill(-1);
      const lastChild = new Int32Array(count).fill(-1);
      const path = [];
      for (let node = 0; node < count; node++) {
        path.length = this.depth[node];
        const parent = path.length ? path[path.length - 1] : -1;
        this.parent[node] = parent;
        if (parent >= 0) {
          if (lastChild[parent] < 0) this.firstChild[parent] = node;
          else this.nextSibling[lastChild[parent]] = node;
          lastChild[parent] = node;
        }
        path.push(node);
      }
      this.zoom = 0;
    }
    label(node) {
      return this.frame[node] < 0 ? "all" : frames[this.frame[node]][0];
    }
    selfWeight(node) {
      let weight = this.total[node];
      for (let child = this.firstChild[node]; child >= 0; child = this.nextSibling[child]) weight -= this.total[child];
      return weight;
    }
    isAncestor(node, of) {
      for (let up = this.parent[of]; up >= 0; up = this.parent[up]) if (up === node) return true;
      return false;
    }
  }

  const trees = data.metrics.map((metric) => new Tree(metric));
  let tree = trees[0];
  let matchedFrames = null; // Uint8Array per frame while a search is active
  let drawn = []; // what the last render drew, for hit tests and the tests' inspection
  let rows = []; // drawn, by depth
  let hovered = null;
  const labelWidths = new Map();

  function formatDuration(ns) {
    for (const [unit, scale] of [["s", 1e9], ["ms", 1e6], ["µs", 1e3]]) {
      if (Math.abs(ns) >= scale) {
        const value = ns / scale;
        return (value < 1000 ? value.toPrecision(3).replace(/\.?0+$/, "") : Math.round(value).toLocaleString("en-US")) + " " + unit;
      }
    }
    return Math.round(ns).toLocaleString("en-US") + " ns";
  }

  function formatWeight(weight) {
    const metric = tree.metric;
    const count = Math.round(weight).toLocaleString("en-US");
    if (metric.unit === "ns") return formatDuration(weight);
    if (metric.unit === "samples") {
      let text = count + (weight === 1 ? " sample" : " samples");
      if (metric.samplePeriodNs) text += " (" + formatDuration(weight * metric.samplePeriodNs) + ")";
      return text;
    }
    if (metric.unit === "calls") return count + (weight === 1 ? " call" : " calls");
    return count;
  }

  function percent(part, whole) {
    return whole ? (100 * part / whole).toFixed(2) + "%" : "0%";
  }

  // Lays out what is visible under the current zoom: the zoomed node's ancestors full width
  // above it, the zoomed node full width, its subtree scaled to the width.
  function layout(width) {
    const items = [];
    const zoom = tree.zoom;
    for (let up = tree.parent[zoom]; up >= 0; up = tree.parent[up]) {
      items.push({ node: up, x: 0, width: width, depth: tree.depth[up], ancestor: true });
    }
    items.reverse();
    const scale = width / (tree.total[zoom] || 1);
    const pending = [[zoom, 0]];
    while (pending.length) {
      const [node, x] = pending.pop();
      const nodeWidth = tree.total[node] * scale;
      items.push({ node: node, x: x, width: nodeWidth, depth: tree.depth[node], ancestor: false });
      let childX = x;
      let merged = null;
      for (let child = tree.firstChild[node]; child >= 0; child = tree.nextSibling[child]) {
        const childWidth = tree.total[child] * scale;
        if (childWidth >= MIN_WIDTH) pending.push([child, childX]);
        else if (merged) { merged.width += childWidth; merged.weight += tree.total[child]; merged.count++; }
        else merged = { node: -1, parentNode: node, x: childX, width: childWidth, weight: tree.total[child], count: 1, depth: tree.depth[node] + 1 };
        childX += childWidth;
      }
      if (merged && merged.width >= 0.5) items.push(merged);
    }
    return items;
  }

  function fitLabel(text, width) {
    const room = width - 6;
    if (room < 14) return "";
    let full = labelWidths.get(text);
    if (full === undefined) { full = context.measureText(text).width; labelWidths.set(text, full); }
    if (full <= room) return text;
    const chars = Math.floor(room / (full / text.length)) - 1;
    return chars >= 2 ? text.slice(0, chars) + "…" : "";
  }

  function render() {
    const width = Math.max(200, canvas.parentElement.clientWidth);
    drawn = layout(width);
    let maxDepth = 0;
    for (const item of drawn) if (item.depth > maxDepth) maxDepth = item.depth;
    const height = (maxDepth + 1) * ROW_HEIGHT;
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.style.width = width + "px";
    canvas.style.height = height + "px";
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    context.clearRect(0, 0, width, height);
    context.font = FONT;
    context.textBaseline = "middle";
    rows = [];
    for (const item of drawn) {
      (rows[item.depth] || (rows[item.depth] = [])).push(item);
      const y = item.depth * ROW_HEIGHT;
      const frame = item.node >= 0 ? tree.frame[item.node] : -1;
      item.matched = item.node >= 0 && frame >= 0 && matchedFrames !== null && matchedFrames[frame] === 1;
      if (item.node < 0) context.fillStyle = "#c8c8c8";
      else if (item.matched) context.fillStyle = data.matchColor;
      else context.fillStyle = frame < 0 ? data.rootColor : frames[frame][3];
      context.globalAlpha = item.ancestor ? 0.55 : 1;
      const gap = item.width > 3 ? 1 : 0;
      context.fillRect(item.x, y, Math.max(item.width - gap, 0.5), ROW_HEIGHT - 1);
      if (item === hovered || (hovered && item.node >= 0 && item.node === hovered.node)) {
        context.strokeStyle = "#202020";
        context.strokeRect(item.x + 0.5, y + 0.5, Math.max(item.width - gap - 1, 0.5), ROW_HEIGHT - 2);
      }
      if (item.node >= 0) {
        const text = fitLabel(tree.label(item.node), item.width);
        if (text) { context.fillStyle = "#111"; context.fillText(text, item.x + 3, y + ROW_HEIGHT / 2); }
      }
    }
    context.globalAlpha = 1;
    resetButton.disabled = tree.zoom === 0;
    zoomText.textContent = tree.zoom ? "Zoomed into " + tree.label(tree.zoom) : "";
    updateMatched();
  }

  function hitTest(event) {
    const box = canvas.getBoundingClientRect();
    const x = event.clientX - box.left;
    const row = rows[Math.floor((event.clientY - box.top) / ROW_HEIGHT)];
    if (!row) return null;
    for (const item of row) if (x >= item.x && x < item.x + item.width) return item;
    return null;
  }

  function describe(item) {
    const lines = [];
    if (item.node < 0) {
      lines.push([item.count + " frames too narrow to draw", true]);
      lines.push([formatWeight(item.weight) + ", " + percent(item.weight, tree.total[0]) + " of total, " +
                  percent(item.weight, tree.total[item.parentNode]) + " of parent", false]);
      lines.push(["click their parent to zoom in", false]);
      return lines;
    }
    const node = item.node;
    const frame = tree.frame[node];
    lines.push([tree.label(node), true]);
    if (frame >= 0) {
      const kind = KINDS[frames[frame][1]];
      const location = frames[frame][2];
      if (kind === "python") lines.push(["Python " + location, false]);
      else if (location) lines.push([KIND_TITLES[kind] + " module " + location, false]);
      else lines.push([KIND_TITLES[kind], false]);
    }
    const weight = tree.total[node];
    let shares = formatWeight(weight) + ", " + percent(weight, tree.total[0]) + " of total";
    if (tree.parent[node] >= 0) shares += ", " + percent(weight, tree.total[tree.parent[node]]) + " of parent";
    lines.push([shares, false]);
    const own = tree.selfWeight(node);
    if (own !== weight) lines.push(["self: " + formatWeight(own) + ", " + percent(own, tree.total[0]) + " of total", false]);
    return lines;
  }

  function showTip(item, event) {
    tip.replaceChildren();
    for (const [text, strong] of describe(item)) {
      const line = document.createElement(strong ? "strong" : "div");
      line.textContent = text;
      tip.appendChild(line);
    }
    tip.hidden = false;
    const margin = 14;
    let left = event.clientX + margin;
    let top = event.clientY + margin;
    if (left + tip.offsetWidth > window.innerWidth - 4) left = Math.max(4, event.clientX - margin - tip.offsetWidth);
    if (top + tip.offsetHeight > window.innerHeight - 4) top = Math.max(4, event.clientY - margin - tip.offsetHeight);
    tip.style.left = left + window.scrollX + "px";
    tip.style.top = top + window.scrollY + "px";
  }

  function zoomTo(node) {
    tree.zoom = node;
    hovered = null;
    tip.hidden = true;
    render();
  }

  function search(text) {
    const needle = text.trim().toLowerCase();
    if (!needle) { matchedFrames = null; render(); return; }
    matchedFrames = new Uint8Array(frames.length);
    for (let i = 0; i < frames.length; i++) if (frames[i][0].toLowerCase().includes(needle)) matchedFrames[i] = 1;
    render();
  }

  // The matched share counts each stack once: a match under a matched frame adds nothing.
  function updateMatched() {
    if (matchedFrames === null) { matchedText.textContent = ""; matchedText.dataset.share = ""; return; }
    let matched = 0;
    let insideDepth = Infinity;
    for (let node = 0; node < tree.count; node++) {
      if (tree.depth[node] <= insideDepth) insideDepth = Infinity;
      if (insideDepth !== Infinity) continue;
      const frame = tree.frame[node];
      if (frame >= 0 && matchedFrames[frame] === 1) { matched += tree.total[node]; insideDepth = tree.depth[node]; }
    }
    const share = tree.total[0] ? matched / tree.total[0] : 0;
    matchedText.dataset.share = String(share);
    matchedText.textContent = "Matched: " + (100 * share).toFixed(2) + "% (" + formatWeight(matched) + ")";
  }

  function selectMetric(index) {
    tree = trees[index];
    hovered = null;
    document.querySelectorAll(".metric-tab").forEach((tab, i) => tab.setAttribute("aria-selected", String(i === index)));
    document.querySelectorAll(".summary-section").forEach((section, i) => { section.hidden = i !== index; });
    render();
  }

  canvas.addEventListener("mousemove", (event) => {
    const item = hitTest(event);
    if (item !== hovered) { hovered = item; render(); }
    if (item) showTip(item, event); else tip.hidden = true;
    canvas.style.cursor = item && item.node >= 0 ? "pointer" : "default";
  });
  canvas.addEventListener("mouseleave", () => { tip.hidden = true; if (hovered) { hovered = null; render(); } });
  canvas.addEventListener("click", (event) => {
    const item = hitTest(event);
    if (item) zoomTo(item.node >= 0 ? item.node : item.parentNode);
  });
  resetButton.addEventListener("click", () => zoomTo(0));
  searchBox.addEventListener("input", () => search(searchBox.value));
  document.querySelectorAll(".metric-tab").forEach((tab, i) => tab.addEventListener("click", () => selectMetric(i)));
  document.querySelectorAll("tr[data-search]").forEach((row) => row.addEventListener("click", () => {
    searchBox.value = row.dataset.search;
    search(searchBox.value);
  }));
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "f") { event.preventDefault(); searchBox.focus(); searchBox.select(); }
    else if (event.key === "Escape") {
      if (document.activeElement === searchBox && searchBox.value) { searchBox.value = ""; search(""); }
      else zoomTo(0);
    }
  });
  let resizePending = false;
  window.addEventListener("resize", () => {
    if (resizePending) return;
    resizePending = true;
    requestAnimationFrame(() => { resizePending = false; render(); });
  });

  // For the tests and for anyone poking at the page from the console.
  window.flamegraph = {
    drawn: () => drawn.map((item) => ({
      label: item.node >= 0 ? tree.label(item.node) : "", node: item.node, x: item.x, width: item.width,
      y: item.depth * ROW_HEIGHT, height: ROW_HEIGHT, matched: !!item.matched, ancestor: !!item.ancestor,
    })),
    metric: () => tree.metric.name,
    zoomed: () => tree.zoom,
    nodeCount: () => tree.count,
    selectMetric: selectMetric,
    search: (text) => { searchBox.value = text; search(text); },
    reset: () => zoomTo(0),
  };
  selectMetric(0);
})();
