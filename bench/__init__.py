"""MiniTwit load tools: the simulator replay, the seed and scale test, and the HTTP client, latency
statistics and JSON writer that drills/ uses too."""
