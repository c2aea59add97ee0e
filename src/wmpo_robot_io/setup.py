from setuptools import find_packages, setup

PACKAGE = "wmpo_robot_io"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="wmpo_ros maintainers",
    maintainer_email="maintainers@wmpo-ros.dev",
    description=(
        "Robot I/O: camera and arm backends (simulated, RealSense, MoveIt) behind one safety filter, and their nodes."
    ),
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "camera_node = wmpo_robot_io.camera_node:main",
            "arm_node = wmpo_robot_io.arm_node:main",
            "sim_node = wmpo_robot_io.sim_node:main",
        ],
    },
)
