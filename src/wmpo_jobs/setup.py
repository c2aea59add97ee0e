from setuptools import find_packages, setup

PACKAGE = "wmpo_jobs"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    package_data={PACKAGE: ["jobs/*.yaml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="wmpo_ros maintainers",
    maintainer_email="maintainers@wmpo-ros.dev",
    description="The jobs: the WMPO loop and the trainer node that runs it, collectors, base policy, studies.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "trainer = wmpo_jobs.trainer_node:main",
        ],
    },
)
