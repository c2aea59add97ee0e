from glob import glob

from setuptools import find_packages, setup

PACKAGE = "wmpo_bringup"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    package_data={PACKAGE: ["params/*.yaml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/rviz", glob("rviz/*.rviz")),
        (f"share/{PACKAGE}/foxglove", glob("foxglove/*.json")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="wmpo_ros maintainers",
    maintainer_email="maintainers@wmpo-ros.dev",
    description=("The graph of each mode (sim, robot, imagine) defined once: launch, params, rviz, the wmpo CLI."),
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "wmpo = wmpo_bringup.cli:main",
        ],
    },
)
