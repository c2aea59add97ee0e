"""The ROS-side helpers every node uses: its entry point, checked parameters, deadlines, action goals."""
