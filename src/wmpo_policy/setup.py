from setuptools import find_packages, setup

PACKAGE = "wmpo_policy"

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
    description="The VLA policy (model, tokenizer, normalisation, BC training), the policy server and its backends.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "policy_server = wmpo_policy.policy_server_node:main",
        ],
    },
)
