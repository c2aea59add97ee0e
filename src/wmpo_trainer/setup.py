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
    description="GRPO in imagination (data parallel), the DPO and online-GRPO baselines, the greedy drift.",
    license="Apache-2.0",
)
