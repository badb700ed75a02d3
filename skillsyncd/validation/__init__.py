"""The validation gate: pure rules over skills, plus ``validate PATH`` for working trees.

The sync core calls, per added or changed skill, :func:`check_entries` (tree
data only) and then :func:`check_skill` (reads SKILL.md and text files via
``read_blob`` and returns the findings with the skill's metadata, from one
parse); then :func:`check_release` across all skills. Rule ids and
default severities are in :mod:`skillsyncd.validation.rules`.
"""
