"""The secret rule table: one row per credential format, read by the scanner, the rule
catalogue, the docs and the generated tests. Data only: how a row is written and what
is derived from it is :mod:`skillsyncd.validation.secrets.formats`.

A *token* rule matches a self-identifying format anywhere (``glpat-`` + 20). A *keyed*
rule matches a value whose format alone says little (32 lowercase hex) only when it is
assigned to a name that contains the provider (``DISCORD_TOKEN=…``). The remaining
*structural* rules (private keys, AWS pairs, JWTs, credentials in URLs, authorization
headers, registry auth, named and generic assignments) need code; their rows carry the
id, provider, severity and a description of the format.

Which formats exist was taken from the providers' documentation and gitleaks' public
rule list (as a list of facts: prefixes, lengths, alphabets).
"""

from __future__ import annotations

from skillsyncd.model import Severity
from skillsyncd.validation.secrets.formats import Format, SecretRule, keyed, n, structural, tok

W = Severity.WARNING

# alphabets, as ranges
AN = "A-Za-z0-9"
ANU = "A-Za-z0-9_"
AND = "A-Za-z0-9_-"  # base64url
B64 = "A-Za-z0-9+/"
HEX = "a-f0-9"
HEXU = "A-F0-9"
HEXM = "a-fA-F0-9"
LAN = "a-z0-9"
UAN = "A-Z0-9"
DIG = "0-9"
ALPHA = "A-Za-z"
DJANGO = "a-z0-9!@#$%^&*(-_=+)"  # django.core.management.utils.get_random_secret_key

UUID: Format = (n(HEX, 8), "-", n(HEX, 4), "-", n(HEX, 4), "-", n(HEX, 4), "-", n(HEX, 12))
UUID_UPPER: Format = (n(HEXU, 8), "-", n(HEXU, 4), "-", n(HEXU, 4), "-", n(HEXU, 4), "-", n(HEXU, 12))


# Order matters where formats overlap: the first rule to claim a span reports it.
TOKEN_RULES: tuple[SecretRule, ...] = (
    # AI providers
    tok("secret.anthropic-api-key", "Anthropic", ("sk-ant-api", n(DIG, 2), "-", n(AND, 80, 120))),
    tok("secret.anthropic-admin-key", "Anthropic", ("sk-ant-admin", n(DIG, 2), "-", n(AND, 80, 120))),
    tok("secret.openrouter-api-key", "OpenRouter", ("sk-or-v1-", n(HEX, 64))),
    tok(
        "secret.openai-api-key",
        "OpenAI",
        ("sk-proj-", n(AND, 40, 200)),
        ("sk-svcacct-", n(AND, 40, 200)),
        ("sk-admin-", n(AND, 40, 200)),
        ("sk-", n(AN, 20), "T3BlbkFJ", n(AN, 20)),
        ("sk-", n(AN, 48)),
    ),
    tok("secret.perplexity-api-key", "Perplexity", ("pplx-", n(AN, 48))),
    tok("secret.groq-api-key", "Groq", ("gsk_", n(AN, 52))),
    tok("secret.xai-api-key", "xAI", ("xai-", n(AN, 80))),
    tok("secret.replicate-api-token", "Replicate", ("r8_", n(AN, 37))),
    tok("secret.huggingface-token", "Hugging Face", ("hf_", n(ALPHA, 34)), ("api_org_", n(ALPHA, 34))),
    tok(
        "secret.langsmith-api-key",
        "LangChain LangSmith",
        ("lsv2_pt_", n(HEX, 32), "_", n(HEX, 10)),
        ("lsv2_sk_", n(HEX, 32), "_", n(HEX, 10)),
    ),
    # code hosting and CI
    tok("secret.github-pat", "GitHub", ("ghp_", n(AN, 36)), ("github_pat_", n(ANU, 82))),
    tok(
        "secret.github-token",
        "GitHub",
        ("gho_", n(AN, 36)),
        ("ghu_", n(AN, 36)),
        ("ghs_", n(AN, 36)),
        ("ghr_", n(AN, 36)),
    ),
    tok("secret.gitlab-pat", "GitLab", ("glpat-", n(AND, 20, 300))),
    tok(
        "secret.gitlab-token",
        "GitLab",
        *(
            (p, n(AND, 20, 300))
            for p in (
                "gldt-",
                "glrt-",
                "glcbt-",
                "glffct-",
                "glft-",
                "glimt-",
                "glagent-",
                "gloas-",
                "glsoat-",
            )
        ),
        ("glptt-", n(HEX, 40)),
        ("GR1348941", n(AND, 20)),
    ),
    tok("secret.atlassian-api-token", "Atlassian", ("ATATT3", n(AND + "=", 186))),
    tok(
        "secret.sourcegraph-token",
        "Sourcegraph",
        ("sgp_", n(HEXM, 16), "_", n(HEXM, 40)),
        ("sgp_local_", n(HEXM, 40)),
        ("sgp_", n(HEXM, 40)),
    ),
    tok(
        "secret.sonarqube-token",
        "SonarQube",
        ("squ_", n(HEX, 40)),
        ("sqp_", n(HEX, 40)),
        ("sqa_", n(HEX, 40)),
    ),
    tok("secret.octopus-deploy-api-key", "Octopus Deploy", ("API-", n(UAN, 26))),
    tok(
        "secret.harness-token",
        "Harness",
        ("pat.", n(AND, 22), ".", n(AN, 24), ".", n(AN, 20)),
        ("sat.", n(AND, 22), ".", n(AN, 24), ".", n(AN, 20)),
    ),
    tok("secret.prefect-api-key", "Prefect", ("pnu_", n(AN, 36))),
    tok("secret.linear-api-key", "Linear", ("lin_api_", n(AN, 40))),
    tok("secret.postman-api-key", "Postman", ("PMAK-", n(HEX, 24), "-", n(HEX, 34))),
    tok("secret.readme-api-key", "ReadMe", ("rdme_", n(LAN, 70))),
    tok("secret.frameio-api-token", "Frame.io", ("fio-u-", n(AND + "=", 64))),
    tok("secret.typeform-api-token", "Typeform", ("tfp_", n(AND + ".=", 59))),
    tok("secret.infracost-api-token", "Infracost", ("ico-", n(AN, 32))),
    tok("secret.intra42-client-secret", "42 Intra", ("s-s4t2ud-", n(HEX, 64)), ("s-s4t2af-", n(HEX, 64))),
    # package registries
    tok("secret.npm-token", "npm", ("npm_", n(AN, 36))),
    tok(
        "secret.pypi-token",
        "PyPI",
        ("pypi-AgEIcHlwaS5vcmc", n(AND, 50, 1000)),
        ("pypi-AgENdGVzdC5weXBpLm9yZw", n(AND, 50, 1000)),
    ),
    tok("secret.rubygems-api-key", "RubyGems", ("rubygems_", n(HEX, 48))),
    tok("secret.clojars-token", "Clojars", ("CLOJARS_", n(LAN, 60))),
    tok("secret.nuget-api-key", "NuGet", ("oy2", n(LAN, 43)), entropy=3.5),
    tok("secret.dockerhub-pat", "Docker Hub", ("dckr_pat_", n(AND, 27)), ("dckr_oat_", n(AND, 32))),
    tok("secret.jfrog-token", "JFrog Artifactory", ("AKCp", n(AN, 69)), ("cmVmd", n(AN, 59)), entropy=4.0),
    # cloud and infrastructure
    tok("secret.google-api-key", "Google", ("AIza", n(AND, 35))),
    tok("secret.google-oauth-secret", "Google", ("GOCSPX-", n(AND, 28))),
    tok("secret.google-oauth-token", "Google", ("ya29.", n(AND, 30, 300))),
    tok("secret.firebase-fcm-server-key", "Firebase", ("AAAA", n(AND, 7), ":APA91b", n(AND, 134))),
    tok(
        "secret.azure-ad-client-secret",
        "Microsoft Azure",
        (n(AND + "~.", 3), n(DIG, 1), "Q~", n(AND + "~.", 31, 34)),
    ),
    tok("secret.azure-storage-key", "Microsoft Azure", ("AccountKey=", n(B64, 86), "==")),
    tok("secret.azure-shared-access-key", "Microsoft Azure", ("SharedAccessKey=", n(B64, 43), "=")),
    tok(
        "secret.digitalocean-token",
        "DigitalOcean",
        ("dop_v1_", n(HEX, 64)),
        ("doo_v1_", n(HEX, 64)),
        ("dor_v1_", n(HEX, 64)),
    ),
    tok(
        "secret.aws-bedrock-api-key",
        "AWS",
        ("ABSKQmVkcm9ja0FQSUtleS", n(B64 + "=", 40, 400)),  # 'ABSK' + base64('BedrockAPIKey-…')
        ("bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t", n(B64 + "=", 100, 4000)),  # a presigned URL
    ),
    tok("secret.alibaba-access-key-id", "Alibaba Cloud", ("LTAI", n(AN, 20))),
    tok("secret.heroku-api-key", "Heroku", ("HRKU-AA", n(AND, 58))),
    tok(
        "secret.flyio-token",
        "Fly.io",
        ("fo1_", n(AND, 43)),
        ("fm1a_", n(B64, 100, 1000)),
        ("fm1r_", n(B64, 100, 1000)),
        ("fm2_", n(B64, 100, 1000)),
    ),
    tok("secret.cloudflare-origin-ca-key", "Cloudflare", ("v1.0-", n(HEX, 24), "-", n(HEX, 146))),
    tok("secret.vault-token", "HashiCorp Vault", ("hvs.", n(AND, 90, 120)), ("hvb.", n(AND, 138, 300))),
    tok(
        "secret.terraform-cloud-token", "HashiCorp Terraform", (n(AN, 14), ".atlasv1.", n(AND + "=", 60, 70))
    ),
    tok("secret.pulumi-token", "Pulumi", ("pul-", n(HEX, 40))),
    tok(
        "secret.doppler-token",
        "Doppler",
        *(("dp." + k + ".", n(AN, 40, 44)) for k in ("pt", "st", "sa", "ct", "scim", "audit")),
    ),
    tok("secret.databricks-token", "Databricks", ("dapi", n(HEX, 32))),
    tok(
        "secret.planetscale-token",
        "PlanetScale",
        ("pscale_tkn_", n(AND + ".=", 32, 64)),
        ("pscale_oauth_", n(AND + ".=", 32, 64)),
        ("pscale_pw_", n(AND + ".=", 32, 64)),
    ),
    tok("secret.scalingo-token", "Scalingo", ("tk-us-", n(AND, 48))),
    tok("secret.openshift-token", "Red Hat OpenShift", ("sha256~", n(AND, 43))),
    tok("secret.dynatrace-token", "Dynatrace", ("dt0c01.", n(AN, 24), ".", n(AN, 64))),
    tok(
        "secret.newrelic-key",
        "New Relic",
        ("NRAK-", n(UAN, 27)),
        ("NRII-", n(AND, 32)),
        ("NRJS-", n(HEX, 19)),
    ),
    tok("secret.sentry-token", "Sentry", ("sntryu_", n(HEX, 64)), ("sntrys_eyJ", n(B64 + "=_", 80, 400))),
    tok(
        "secret.grafana-token",
        "Grafana",
        ("glc_", n(B64, 32, 400)),
        ("glsa_", n(AN, 32), "_", n(HEXM, 8)),
        ("eyJrIjoi", n(AN, 70, 400)),
    ),
    tok("secret.clickhouse-api-secret", "ClickHouse Cloud", ("4b1d", n(AN, 38))),
    tok(
        "secret.onepassword-token",
        "1Password",
        ("ops_eyJ", n(B64, 250, 2000)),
        ("A3-", n(UAN, 6), "-", n(UAN, 11), "-", n(UAN, 5), "-", n(UAN, 5), "-", n(UAN, 5)),
    ),
    tok("secret.age-secret-key", "age", ("AGE-SECRET-KEY-1", n("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58))),
    tok(
        "secret.defined-networking-token",
        "Defined Networking",
        ("dnkey-", n(AND + "=", 26), "-", n(AND + "=", 52)),
    ),
    tok(
        "secret.authress-key",
        "Authress",
        *(
            (p, n(AN, 5, 30), ".", n(AN, 4, 6), ".acc_", n(AND, 10, 32), ".", n(B64 + "_=-", 30, 120))
            for p in ("sc_", "ext_", "scauth_", "authress_")
        ),
    ),
    tok(
        "secret.settlemint-token", "SettleMint", *((p, n(AN, 16)) for p in ("sm_aat_", "sm_pat_", "sm_sat_"))
    ),
    tok("secret.maxmind-license-key", "MaxMind", (n(AN, 6), "_", n(AN, 29), "_mmk"), entropy=4.0),
    tok("secret.adobe-client-secret", "Adobe", ("p8e-", n(AN, 32))),
    tok("secret.airtable-pat", "Airtable", ("pat", n(AN, 14), ".", n(HEX, 64))),
    tok("secret.notion-token", "Notion", ("ntn_", n(DIG, 11), n(AN, 35)), ("secret_", n(AN, 43))),
    tok("secret.hubspot-pat", "HubSpot", ("pat-na1-", *UUID), ("pat-eu1-", *UUID)),
    tok("secret.yandex-api-key", "Yandex", ("AQVN", n(AND, 35, 38))),
    tok("secret.django-secret-key", "Django", ("django-insecure-", n(DJANGO, 50))),
    # payments and commerce
    tok(
        "secret.stripe-live-key",
        "Stripe",
        ("sk_live_", n(AN, 20, 247)),
        ("rk_live_", n(AN, 20, 247)),
        ("sk_prod_", n(AN, 20, 247)),
        ("rk_prod_", n(AN, 20, 247)),
    ),
    tok("secret.stripe-webhook-secret", "Stripe", ("whsec_", n(B64 + "=", 32, 100))),
    tok(
        "secret.shopify-token",
        "Shopify",
        *((p, n(HEXM, 32)) for p in ("shpat_", "shpca_", "shppa_", "shpss_")),
    ),
    tok(
        "secret.square-token",
        "Square",
        ("sq0atp-", n(AND, 22, 60)),
        ("sq0csp-", n(AND, 40, 50)),
        ("EAAA", n(AND, 60)),
    ),
    tok(
        "secret.braintree-token",
        "PayPal Braintree",
        ("access_token$production$", n(LAN, 16), "$", n(HEX, 32)),
    ),
    tok("secret.shippo-api-token", "Shippo", ("shippo_live_", n(HEXM, 40)), ("shippo_test_", n(HEXM, 40))),
    tok("secret.easypost-api-key", "EasyPost", ("EZAK", n(AN, 54)), ("EZTK", n(AN, 54))),
    tok(
        "secret.duffel-api-token",
        "Duffel",
        ("duffel_live_", n(AND + "=", 43)),
        ("duffel_test_", n(AND + "=", 43)),
    ),
    tok(
        "secret.flutterwave-key",
        "Flutterwave",
        ("FLWSECK_TEST-", n("a-hA-H0-9", 32), "-X"),
        ("FLWSECK-", n("a-hA-H0-9", 32), "-X"),
        ("FLWSECK_TEST-", n("a-hA-H0-9", 12)),
    ),
    tok(
        "secret.plaid-token",
        "Plaid",
        *(("access-" + env + "-", *UUID) for env in ("sandbox", "development", "production")),
    ),
    # messaging, email, social
    tok(
        "secret.slack-config-token",
        "Slack",
        ("xoxe.xoxb-", n(DIG, 1), "-", n(AN, 160, 170)),
        ("xoxe.xoxp-", n(DIG, 1), "-", n(AN, 160, 170)),
        ("xoxe-", n(DIG, 1), "-", n(AN, 140, 150)),
    ),
    tok(
        "secret.slack-token",
        "Slack",
        *(("xox" + k + "-", n(DIG, 8, 14), "-", n(AN + "-", 8, 250)) for k in "baposr"),
        ("xoxa-", n(DIG, 1), "-", n(AN, 8, 48)),
        ("xoxr-", n(DIG, 1), "-", n(AN, 8, 48)),
    ),
    tok(
        "secret.slack-app-token",
        "Slack",
        ("xapp-", n(DIG, 1), "-", n(UAN, 8, 14), "-", n(DIG, 10, 16), "-", n(AN, 32, 80)),
    ),
    tok(
        "secret.slack-webhook",
        "Slack",
        *(
            ("hooks.slack.com/" + k + "/", n(AN + "+/_-", 30, 160))
            for k in ("services", "workflows", "triggers")
        ),
    ),
    tok(
        "secret.discord-webhook",
        "Discord",
        ("discord.com/api/webhooks/", n(DIG, 17, 20), "/", n(AND, 60, 70)),
        ("discordapp.com/api/webhooks/", n(DIG, 17, 20), "/", n(AND, 60, 70)),
    ),
    tok(
        "secret.teams-webhook",
        "Microsoft Teams",
        ("webhook.office.com/webhookb2/", n(AND + "@/", 100, 300)),
        ("outlook.office.com/webhook/", n(AND + "@/", 100, 300)),
    ),
    tok(
        "secret.power-automate-webhook",
        "Microsoft Power Automate (Teams workflows)",
        *(
            (
                "/workflows/",
                n(HEX, 32),
                "/triggers/manual/paths/invoke",
                "?api-version=",
                n(DIG + ".-", 1, 12),
                "&sp=",
                n(AN + "%._-", 10, 100),
                "&sv=",
                n(DIG + ".", 3, 5),
                "&sig=",
                n(AND, 43),
            ),
        ),
    ),
    tok("secret.telegram-bot-token", "Telegram", (n(DIG, 5, 16), ":A", n(AND, 34))),
    tok("secret.sendgrid-api-key", "SendGrid (Twilio)", ("SG.", n(AND, 22), ".", n(AND, 43))),
    tok(
        "secret.brevo-api-key",
        "Brevo (Sendinblue)",
        ("xkeysib-", n(HEX, 64), "-", n(AN, 16)),
        ("xsmtpsib-", n(HEX, 64), "-", n(AN, 16)),
    ),
    tok("secret.mailchimp-api-key", "Mailchimp", (n(HEX, 32), "-us", n(DIG, 1, 2))),
    tok("secret.mailgun-api-key", "Mailgun", ("key-", n(HEX, 32))),
    tok("secret.twilio-api-key", "Twilio", ("SK", n(HEXM, 32))),
    tok(
        "secret.twitter-bearer-token",
        "X (Twitter)",
        ("AAAAAAAAAAAAAAAAAAAAA", n(AN + "%", 80, 100)),
        entropy=3.5,
    ),
    tok(
        "secret.facebook-access-token",
        "Meta (Facebook)",
        ("EAAM", n(AN, 100, 400)),
        ("EAAC", n(AN, 100, 400)),
    ),
    tok("secret.mapbox-secret-token", "Mapbox", ("sk.eyJ", n(AND, 50, 300), ".", n(AND, 22))),
    tok(
        "secret.dropbox-token",
        "Dropbox",
        ("sl.", n(AND + "=", 130, 1400)),
        (n(LAN, 11), "AAAAAAAAAA", n(AND + "=", 43)),
    ),
)

KEYED_RULES: tuple[SecretRule, ...] = (
    keyed("secret.heroku-api-key", "Heroku", ("heroku",), UUID),
    keyed(
        "secret.discord-token",
        "Discord",
        ("discord",),
        (n(HEX, 64),),
        (n(AND + "=", 32),),
        (n("MN", 1), n(AN, 23, 25), ".", n(AND, 6), ".", n(AND, 27, 38)),
    ),
    keyed("secret.datadog-api-key", "Datadog", ("datadog", "dd_api", "dd_app"), (n(HEX, 32),), (n(LAN, 40),)),
    keyed("secret.sentry-auth-token", "Sentry", ("sentry",), (n(HEX, 64),)),
    keyed(
        "secret.azure-key",
        "Microsoft Azure",
        ("azure",),
        (n(HEXM, 32),),
        (n("a-z2-7", 52),),
        (n(B64, 86), "=="),
    ),
    keyed("secret.cloudflare-api-key", "Cloudflare", ("cloudflare", "cf_api"), (n(AND, 40),), (n(HEX, 37),)),
    keyed("secret.bitbucket-secret", "Bitbucket", ("bitbucket",), (n(LAN, 32),), (n(AND + "=", 64),)),
    keyed("secret.algolia-api-key", "Algolia", ("algolia",), (n(LAN, 32),)),
    keyed("secret.adafruit-api-key", "Adafruit", ("adafruit",), (n(LAN + "_-", 32),)),
    keyed("secret.adobe-client-id", "Adobe", ("adobe",), (n(HEX, 32),)),
    keyed("secret.airtable-api-key", "Airtable", ("airtable",), ("key", n(AN, 14)), (n(LAN, 17),)),
    keyed("secret.alibaba-secret-key", "Alibaba Cloud", ("alibaba", "aliyun"), (n(LAN, 30),)),
    keyed(
        "secret.asana-token",
        "Asana",
        ("asana",),
        (n(LAN, 32),),
        (n(DIG, 16),),
        (n(DIG, 1), "/", n(DIG, 16), ":", n(HEX, 32)), entropy=2.0,
    ),
    keyed(
        "secret.atlassian-token",
        "Atlassian (Jira, Confluence)",
        ("atlassian", "jira", "confluence"),
        (n(LAN, 24),),
    ),
    keyed("secret.beamer-api-token", "Beamer", ("beamer",), ("b_", n(LAN + "=_-", 44))),
    keyed("secret.bittrex-key", "Bittrex", ("bittrex",), (n(LAN, 32),)),
    keyed("secret.cisco-meraki-api-key", "Cisco Meraki", ("meraki",), (n(HEX, 40),)),
    keyed("secret.codecov-token", "Codecov", ("codecov",), (n(LAN, 32),), UUID),
    keyed("secret.cohere-api-key", "Cohere", ("cohere", "co_api_key"), (n(AN, 40),)),
    keyed("secret.coinbase-token", "Coinbase", ("coinbase",), (n(LAN + "_-", 64),)),
    keyed("secret.confluent-key", "Confluent", ("confluent",), (n(LAN, 16),), (n(AN + "+/", 64),)),
    keyed("secret.contentful-token", "Contentful", ("contentful",), (n(AND + "=", 43),)),
    keyed("secret.droneci-token", "Drone CI", ("droneci", "drone_token"), (n(LAN, 32),)),
    keyed("secret.dropbox-app-secret", "Dropbox", ("dropbox",), (n(LAN, 15),)),
    keyed("secret.etsy-token", "Etsy", ("etsy",), (n(LAN, 24),)),
    keyed(
        "secret.facebook-secret",
        "Meta (Facebook)",
        ("facebook", "fb_app"),
        (n(HEX, 32),),
        (n(DIG, 15, 16), "|", n(LAN + "_-", 27, 40)),
    ),
    keyed("secret.fastly-api-token", "Fastly", ("fastly",), (n(AND + "=", 32),)),
    keyed("secret.finicity-key", "Finicity", ("finicity",), (n(HEX, 32),), (n(LAN, 20),)),
    keyed("secret.finnhub-token", "Finnhub", ("finnhub",), (n(LAN, 20),)),
    keyed("secret.flickr-token", "Flickr", ("flickr",), (n(LAN, 32),)),
    keyed("secret.freshbooks-token", "FreshBooks", ("freshbooks",), (n(LAN, 64),)),
    keyed("secret.gitter-token", "Gitter", ("gitter",), (n(LAN + "_-", 40),)),
    keyed("secret.gocardless-token", "GoCardless", ("gocardless",), ("live_", n(AND + "=", 40))),
    keyed("secret.hubspot-api-key", "HubSpot", ("hubspot",), UUID_UPPER, UUID),
    keyed("secret.intercom-token", "Intercom", ("intercom",), (n(AND + "=", 60),)),
    keyed(
        "secret.jfrog-api-key",
        "JFrog Artifactory",
        ("jfrog", "artifactory", "bintray", "xray"),
        (n(LAN, 73),),
        (n(LAN, 64),),
    ),
    keyed("secret.kraken-token", "Kraken", ("kraken",), (n(AN + "/=_+-", 80, 90),)),
    keyed("secret.kucoin-key", "KuCoin", ("kucoin",), (n(HEX, 24),), UUID),
    keyed("secret.launchdarkly-token", "LaunchDarkly", ("launchdarkly",), (n(AND + "=", 40),)),
    keyed("secret.linear-client-secret", "Linear", ("linear",), (n(HEX, 32),)),
    keyed(
        "secret.linkedin-secret",
        "LinkedIn",
        ("linkedin", "linked_in", "linked-in"),
        (n(LAN, 14),),
        (n(LAN, 16),),
    ),
    keyed("secret.lob-api-key", "Lob", ("lob_", "lob-"), ("live_", n(HEX, 35)), ("test_", n(HEX, 35))),
    keyed(
        "secret.mailgun-key",
        "Mailgun",
        ("mailgun",),
        (n("a-h0-9", 32), "-", n("a-h0-9", 8), "-", n("a-h0-9", 8)),
    ),
    keyed("secret.mapbox-token", "Mapbox", ("mapbox",), ("pk.", n(LAN, 60), ".", n(LAN, 22))),
    keyed("secret.mattermost-token", "Mattermost", ("mattermost",), (n(LAN, 26),)),
    keyed(
        "secret.messagebird-token",
        "MessageBird",
        ("messagebird", "message_bird", "message-bird"),
        (n(LAN, 25),),
        UUID,
    ),
    keyed("secret.netlify-token", "Netlify", ("netlify",), (n(AND + "=", 40, 46),)),
    keyed("secret.nytimes-token", "New York Times", ("nytimes", "newyorktimes"), (n(AND + "=", 32),)),
    keyed("secret.okta-token", "Okta", ("okta",), ("00", n(AND + "=", 40))),
    keyed("secret.plaid-key", "Plaid", ("plaid",), (n(LAN, 24),), (n(LAN, 30),)),
    keyed("secret.postmark-token", "Postmark", ("postmark",), UUID),
    keyed("secret.privateai-token", "Private AI", ("privateai", "private_ai", "private-ai"), (n(LAN, 32),)),
    keyed("secret.rapidapi-key", "RapidAPI", ("rapidapi",), (n(AND, 50),)),
    keyed("secret.sendbird-token", "Sendbird", ("sendbird",), (n(HEX, 40),), UUID),
    keyed("secret.sidekiq-secret", "Sidekiq", ("contribsys",), (n(HEX, 8), ":", n(HEX, 8)), entropy=2.5),
    keyed("secret.snyk-token", "Snyk", ("snyk",), UUID),
    keyed("secret.sonar-token", "SonarQube", ("sonar",), (n(AND + "=", 40),)),
    keyed("secret.squarespace-token", "Squarespace", ("squarespace",), UUID),
    keyed("secret.sumologic-key", "Sumo Logic", ("sumo",), ("su", n(AN, 12)), (n(AN, 64),)),
    keyed("secret.travis-token", "Travis CI", ("travis",), (n(LAN, 22),)),
    keyed("secret.twitch-token", "Twitch", ("twitch",), (n(LAN, 30),)),
    keyed(
        "secret.twitter-secret",
        "X (Twitter)",
        ("twitter", "x_api", "x_access", "x_consumer"),
        (n(AN, 45),),
        (n(AN, 25),),
        (n(AN, 50),),
        (n(DIG, 15, 25), "-", n(AN, 20, 40)),
    ),
    keyed(
        "secret.yandex-token",
        "Yandex",
        ("yandex",),
        ("YC", n(AND, 38)),
        ("t1.", n(AND, 20, 120), ".", n(AND, 86)),
    ),
    keyed("secret.zendesk-secret", "Zendesk", ("zendesk",), (n(LAN, 40),)),
    keyed("secret.vercel-token", "Vercel", ("vercel",), (n(AN, 24),)),
    keyed("secret.mongodb-atlas-key", "MongoDB Atlas", ("atlas",), UUID),
)

STRUCTURAL_RULES: tuple[SecretRule, ...] = (
    structural(
        "secret.private-key",
        "any (PEM)",
        "`-----BEGIN … PRIVATE KEY-----` (RSA, EC, DSA, OPENSSH, PGP, ENCRYPTED, PKCS#8) and "
        "`---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----` followed by 40+ characters of key material, "
        "whatever they look like (also split over quoted lines or written with `\\n`), and PuTTY's "
        "`Private-Lines:`; a body of `...`, `<…>` or `xxxx` is a stand-in",
        prefilter=("private key", "private-lines:"),
    ),
    structural(
        "secret.aws-secret-key",
        "AWS",
        "an `AKIA`/`ASIA`/`ABIA`/`ACCA`/`A3T…` key id with a 40-character secret within 5 lines, or "
        "40 `[A-Za-z0-9/+]` assigned to `aws_secret_access_key`, `SecretAccessKey`, …",
    ),
    structural(
        "secret.aws-access-key-id",
        "AWS",
        "an AWS key id alone (`AKIA` + 16)",
        W,
        prefilter=("akia", "asia", "abia", "acca", "a3t"),
    ),
    structural(
        "secret.jwt",
        "any (JWT)",
        "three base64url parts whose header is JSON with `alg`: any other JWT (a day or less, no "
        "`exp` or no `iat`, the public `anon` role, a documented sample)",
        W,
        prefilter=("eyj",),
    ),
    structural(
        "secret.jwt-service-role",
        "any (JWT)",
        "a JWT whose payload grants a privileged role (`role`: `service_role`, `supabase_admin`, "
        "`admin`, …), such as Supabase's service key",
        prefilter=("eyj",),
    ),
    structural(
        "secret.jwt-long-lived",
        "any (JWT)",
        "a JWT valid for more than a day after it was issued (`exp` - `iat` or `nbf` > 86400 s), "
        "unless its role is the public `anon` or its claims are a documented sample",
        prefilter=("eyj",),
    ),
    structural(
        "secret.registry-auth",
        "any (Docker config)",
        "a registry login in a Docker `config.json`: `\"auth\": \"<base64 of user:password>\"` "
        "(also inside a base64 `.dockerconfigjson`), or an `identitytoken` / `registrytoken`",
        prefilter=("auth", "identitytoken", "registrytoken", "eyjhdxrocyi6"),
    ),
    structural(
        "secret.url-credential",
        "any",
        "a password in a URL of any scheme: `postgresql://user:…@host`, `https://user:token@…`",
        prefilter=("://",),
    ),
    structural(
        "secret.http-authorization",
        "any",
        "a literal token after `Authorization: Bearer`, `token` or `Basic`",
        prefilter=("authorization",),
    ),
    structural(
        "secret.named-credential",
        "any",
        "a random-looking value (16+ mixed characters, 20+ hex, a UUID; 10+ for passwords) assigned to "
        "a name ending in `api_key`, `secret`, `token`, `password`, `private_key`, `client_secret`, …",
    ),
    structural(
        "secret.generic",
        "any",
        "a high-entropy value assigned to a name mentioning a key, token, secret or password",
        W,
    ),
)

SECRET_RULES: tuple[SecretRule, ...] = TOKEN_RULES + KEYED_RULES + STRUCTURAL_RULES

