from setuptools import find_packages, setup

PACKAGE = "wmpo_trainer"

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
    description="GRPO in imagination, the DPO and online-GRPO baselines, the WMPO loop and the trainer node.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "trainer = wmpo_trainer.trainer_node:main",
        ],
    },
)
