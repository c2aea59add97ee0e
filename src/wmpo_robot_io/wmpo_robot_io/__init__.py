"""Robot I/O: camera and arm backends (simulated, RealSense, MoveIt) behind one safety filter, and their nodes."""
