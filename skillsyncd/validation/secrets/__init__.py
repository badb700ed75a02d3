"""Find credentials committed into skills, without ever echoing them.

Skills are loaded into the model's context, so a credential in any file of a skill
reaches every model provider the gateway talks to. The rules live in one table
(:mod:`skillsyncd.validation.secret_rules`); the modules here, by concern:

- :mod:`.formats`: how a row of the table is written, and the regex and docs derived from it;
- :mod:`.catalogue`: the table as the rule catalogue and the docs table see it;
- :mod:`.compiled`: the table compiled for scanning (regexes, the literal prefilter);
- :mod:`.values`: what is not a secret (placeholders, patterns, code, words) and what is;
- :mod:`.structural`: private keys, AWS pairs, JWTs, URLs, authorization headers, registry auth;
- :mod:`.assignments`: values assigned to names that say "credential" or a provider;
- :mod:`.views`: the same text read as its languages would (escapes decoded, split strings joined);
- :mod:`.scan`: one window of text through every rule, overlapping hits reported once;
- :mod:`.decode`: bytes to text (UTF-8/16/32, binaries' printable runs, media skipped), in windows;
- :mod:`.fingerprints` and :mod:`.allowlist`: how a hit is named and allowed, never by its value.
"""
