"""Will the agents use what is deployed: eligibility, the prompt budget, allow-lists, shadowing.

Loading is not using: after the gateway loads a skill it decides whether the skill is
eligible (``metadata.openclaw.requires``, ``os``, ``always``), whether an agent's
allow-list lets it in, whether a same-named skill in a higher tier wins, and how much of
its description fits the skills catalog of every agent's prompt. Each module here
follows one of those decisions as OpenClaw 2026.9.6 makes it, as pure functions of data:
:mod:`.skill` (what a SKILL.md declares), :mod:`.context` (the gateway's PATH, env, config
and folders: the only module that reads anything), :mod:`.eligibility`, :mod:`.budget`,
:mod:`.allowlists`, :mod:`.shadowing`, and :mod:`.check` (all of them as findings).
"""
