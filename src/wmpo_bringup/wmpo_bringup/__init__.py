"""The graph of each mode (sim, robot, imagine) defined once, its launch files, params, rviz config and the `wmpo` CLI."""
