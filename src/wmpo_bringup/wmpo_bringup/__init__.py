"""The graph of each mode (sim, robot, imagine) defined once: launch files, params, rviz config, the
`wmpo` CLI."""
