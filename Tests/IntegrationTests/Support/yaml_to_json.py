"""Prints every YAML document of a file as one JSON array, for tests written in Swift
(Tests/IntegrationTests/DeployFilesTests.swift): python3 yaml_to_json.py FILE."""
import json
import sys

import yaml

with open(sys.argv[1], encoding="utf-8") as source:
    print(json.dumps(list(yaml.safe_load_all(source))))
