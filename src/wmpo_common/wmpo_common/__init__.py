"""The helpers every wmpo package uses. The modules here import no ROS (training machines use them
too); the ROS-side ones (rclpy, messages) are in ``wmpo_common.ros``."""
