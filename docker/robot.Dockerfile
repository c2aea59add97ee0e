# Robot image: ROS 2 Jazzy with MoveIt, realsense2_camera, rosbag2 (MCAP), rviz2 and this
# workspace built with colcon. Build from the repository root:
#   docker build -f docker/robot.Dockerfile -t wmpo_ros:robot .
FROM ros:jazzy-ros-base-noble

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    MUJOCO_GL=egl

# ROS packages come from the Jazzy apt snapshot, which pins their versions.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends \
        python3-pip python3-colcon-common-extensions \
        ros-jazzy-moveit ros-jazzy-moveit-py ros-jazzy-realsense2-camera \
        ros-jazzy-rosbag2-storage-mcap ros-jazzy-rviz2 ros-jazzy-launch-pytest \
        libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6 libusb-1.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /ws
# Python dependencies that are not ROS packages (the ROS wheels of requirements.txt are not used here).
COPY requirements.txt requirements.lock requirements-nodeps.txt ./
RUN grep -vE '^(ros-|catkin-pkg|setuptools|wheel|#|$)' requirements.txt > /tmp/requirements-robot.txt \
    && python3 -m pip install --ignore-installed -r /tmp/requirements-robot.txt \
    && python3 -m pip install --no-deps -r requirements-nodeps.txt

COPY src/ src/
RUN . /opt/ros/jazzy/setup.bash && colcon build --symlink-install --event-handlers console_direct-

COPY docker/ros_entrypoint.sh /ros_entrypoint.sh
ENTRYPOINT ["/ros_entrypoint.sh"]
CMD ["ros2", "launch", "wmpo_bringup", "robot.launch.py"]
