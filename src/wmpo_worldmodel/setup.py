from setuptools import find_packages, setup

PACKAGE = "wmpo_worldmodel"

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
        "Action-conditioned video world model (diffusers), video success classifier (VideoMAE) and the imagination API."
    ),
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "world_model = wmpo_worldmodel.world_model_node:main",
        ],
    },
)
