"""The benchmark suite behind benchmarks/run.py: environments (envs), the tool table (tools),
running and timing one program (measure), callgrind counts (callgrind), capture throughput
(capture_costs) and the Markdown tables (render)."""
