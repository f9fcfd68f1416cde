#!/usr/bin/env python3
"""Loads each YAML file named on the command line the way strict loaders do: a mapping that
holds the same key twice is an error (YAML 1.2 requires keys to be unique; PyYAML's stock
loaders silently keep the last value). Anchors, aliases and merge keys (`<<`) load as usual.

Prints `OK <file>` per file, or `<file>:<line>:<column>: duplicate key <key> (first at line
<n>)` per duplicate, and exits 1 when any file has one or does not parse. Needs PyYAML,
which schemathesis brings into the venv scripts/lib/python.sh sets up.
"""

import sys


def strict_loader(yaml):
    class StrictLoader(yaml.SafeLoader):
        pass

    def construct_mapping(loader, node, deep=False):
        # Only the keys written in this mapping count: keys it takes in through a merge key
        # (`<<`) may be overridden, which is what merging is for.
        first_line = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = loader.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # SafeLoader itself refuses unhashable keys, with its own message
            if key in first_line:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {first_line[key]})",
                    mark,
                )
            first_line[key] = key_node.start_mark.line + 1
        loader.flatten_mapping(node)
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return StrictLoader


def main(paths):
    try:
        import yaml
    except ImportError as error:
        print(f"strict_yaml: PyYAML is not installed: {error}", file=sys.stderr)
        return 1
    if not paths:
        print("usage: strict_yaml.py FILE...", file=sys.stderr)
        return 1
    loader = strict_loader(yaml)
    failed = False
    for path in paths:
        try:
            with open(path, encoding="utf-8") as handle:
                yaml.load(handle, Loader=loader)
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
            print(f"{where}: {error.problem}", file=sys.stderr)
            failed = True
            continue
        except (OSError, yaml.YAMLError) as error:
            print(f"{path}: {error}", file=sys.stderr)
            failed = True
            continue
        print(f"OK {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
