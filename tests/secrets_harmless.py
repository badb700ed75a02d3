"""A harmless corpus built at test time: text that names, describes or looks like a
credential and is not one. By category: placeholders of every shape the docs name (and
each format of the table written as a stand-in), public token contract addresses,
hashes, UUIDs, base64 images, public keys and certificates, prose about secrets, and
code that names credential classes or reads a credential from somewhere else.

Each item is ``(name, value)`` where a settings table would store it, or ``(None, text)``
for text with no name; the same items go into text files and a SQLite file.
"""

from __future__ import annotations

import base64
import hashlib
import random
import string

from secret_samples import FORMAT_RULES, name_for

from skillsyncd.validation.secrets.formats import Format

Item = tuple[str | None, str]
HEX = "0123456789abcdef"


def _checksum_address(rng: random.Random) -> str:
    """A 0x + 40 hex address in mixed case, as EIP-55 writes it (the case is random here)."""
    return "0x" + "".join(
        c.upper() if c.isalpha() and rng.random() < 0.5 else c for c in (rng.choice(HEX) for _ in range(40))
    )


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def _stand_ins(fmt: Format) -> list[str]:
    """The format's literal prefix with the stand-ins docs put after it."""
    head = next((s for s in fmt if isinstance(s, str)), "")
    return [
        head + tail
        for tail in (
            "x" * 32,
            "X" * 24,
            "...",
            "<your-token>",
            "YOUR_KEY_HERE",
            "your-api-key-here",
            "${TOKEN}",
            "*" * 20,
            "0" * 32,
            "REPLACE_ME",
        )
    ]


def placeholders() -> list[Item]:
    """The docs' shapes, then every format of the table as a stand-in under its usual name."""
    out: list[Item] = [
        ("API_KEY", "YOUR_API_KEY"),
        ("OPENAI_API_KEY", "your-api-key-here"),
        ("OPENAI_API_KEY", "your_openai_api_key_here"),
        ("token", "<token>"),
        ("SECRET", "<your-secret>"),
        ("ANTHROPIC_API_KEY", "sk-ant-..."),
        ("ANTHROPIC_API_KEY", "sk-ant-xxxxx"),
        ("api_key", "sk-your-key-here"),
        ("OPENAI_API_KEY", "sk-proj-your-key"),
        ("TOKEN", "insert-token-here"),
        ("API_KEY", "xxxxxxxxxxxxxxxx"),
        ("api_key", "API_KEY_HERE"),
        ("GITHUB_TOKEN", "ghp_yourTokenGoesHere"),
        ("STRIPE_SECRET_KEY", "sk_live_your_stripe_secret_key"),
        ("TOKEN", "put-your-token-here"),
        ("password", "your_password"),
        ("client_secret", "replace-with-your-client-secret"),
        ("API_KEY", "my-api-key-12345"),
        ("SECRET_KEY", "change-me-in-production"),
        ("TOKEN", "paste_token_here"),
        ("api_key", "YOUR-API-KEY-GOES-HERE"),
        ("NOTION_TOKEN", "secret_your_notion_integration_token"),
        ("SLACK_TOKEN", "xoxb-your-token"),
        ("HF_TOKEN", "hf_your_token_here"),
        ("PASSWORD", "********"),
        ("api_key", "${OPENAI_API_KEY}"),
        ("token", "{{ .Values.token }}"),
        ("password", "$DB_PASSWORD"),
        (
            "SLACK_WEBHOOK_URL",
            "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
        ),
        ("aws_access_key_id", "AKIAIOSFODNN7EXAMPLE"),
        ("aws_secret_access_key", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        ("GOOGLE_API_KEY", "AI" + "zaSyA1B2C3D4E5F6G7H8I9J0K1L2M3N4O5P6Q"),
        ("request_id", "550e8400-e29b-41d4-a716-446655440000"),
        ("DB_PASSWORD", "changeme"),
        (None, "-----BEGIN RSA PRIVATE KEY-----\n<paste your key here>\n-----END RSA PRIVATE KEY-----"),
        (None, "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----"),
        (None, "DATABASE_URL=postgresql://postgres:postgres@localhost:5432/app"),
        (None, "mongodb+srv://<username>:<password>@cluster0.example.mongodb.net/"),
        (None, 'curl -H "Authorization: Bearer $TOKEN" https://api.github.com/user'),
        (
            None,
            "jwt: eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwia"
            "WF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        ),
    ]
    for rule in FORMAT_RULES:
        for fmt in rule.formats:
            out.extend((name_for(rule), v) for v in _stand_ins(fmt))
    return out


def contract_addresses(rng: random.Random) -> list[Item]:
    names = (
        "SELL_TOKEN",
        "BUY_TOKEN",
        "USDC_TOKEN",
        "tokenAddress",
        "REWARD_TOKEN_ADDRESS",
        "token",
        "WETH_TOKEN",
        "TOKEN_CONTRACT",
        "stakingToken",
        "quote_token",
    )
    return [(n, _checksum_address(rng)) for n in names] + [
        ("SELL_TOKEN", "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"),
        ("BUY_TOKEN", "0x" + f"{rng.getrandbits(160):040x}"),
    ]


def hashes(rng: random.Random) -> list[Item]:
    data = rng.randbytes(64)
    return [
        ("commit", hashlib.sha1(data).hexdigest()),
        ("sha256", hashlib.sha256(data).hexdigest()),
        ("checksum", hashlib.sha512(data).hexdigest()),
        ("md5", hashlib.md5(data).hexdigest()),
        ("etag", hashlib.md5(data[:8]).hexdigest()),
        ("cache_key", f"{rng.getrandbits(128):032x}"),
        ("integrity", "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()),
        ("digest", "sha256:" + hashlib.sha256(data[:9]).hexdigest()),
        ("token_hash", hashlib.sha256(data[:5]).hexdigest()),
        ("password_sha256", hashlib.sha256(data[:7]).hexdigest()),
        (
            "password_hash",
            "$2b$12$" + "".join(rng.choice(string.ascii_letters + string.digits + "./") for _ in range(53)),
        ),
    ]


def uuids(rng: random.Random) -> list[Item]:
    names = (
        "request_id",
        "trace_id",
        "tenant_id",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "x-request-id",
        "subscription_id",
        "workspace_id",
        "session_id",
        "correlationId",
        "token_id",
        "secret_id",
    )
    return [(n, _uuid(rng)) for n in names]


def images(rng: random.Random) -> list[Item]:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + rng.randbytes(400)).decode()
    jpg = base64.b64encode(b"\xff\xd8\xff\xe0" + rng.randbytes(400)).decode()
    return [
        (None, f"![logo](data:image/png;base64,{png})"),
        ("image", jpg),
        (None, f'<img src="data:image/jpeg;base64,{jpg}">'),
        ("icon_b64", png),
    ]


def public_keys(rng: random.Random) -> list[Item]:
    pub = base64.b64encode(rng.randbytes(270)).decode()
    cert = "\n".join(pub[i : i + 64] for i in range(0, len(pub), 64))
    return [
        (None, f"-----BEGIN PUBLIC KEY-----\n{cert}\n-----END PUBLIC KEY-----"),
        (None, f"-----BEGIN CERTIFICATE-----\n{cert}\n-----END CERTIFICATE-----"),
        (None, f"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n{cert}\n-----END PGP PUBLIC KEY BLOCK-----"),
        ("ssh_public_key", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + pub[:43] + " someone@laptop"),
        ("authorized_key", "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQ" + pub[:200] + " ci@build"),
        (
            "age_recipient",
            "age1" + "".join(rng.choice("qpzry9x8gf2tvdw0s3jn54khce6mua7l") for _ in range(58)),
        ),
        ("publishable_key", "pk_live_" + "".join(rng.choice(string.ascii_letters) for _ in range(24))),
        ("STRIPE_TEST_KEY", "sk_test_" + "".join(rng.choice(string.ascii_letters) for _ in range(24))),
    ]


PROSE: list[Item] = [
    (None, '{ "name": "HTTP health", "status": "pass", "response_ms": 45 }'),
    (None, "**Purpose:** Forward-secret, break-in-recovery message encryption"),
    (None, "**Secret:** Forward-secret, break-in-recovery"),
    (None, "Token: Bearer-token-based authentication"),
    ("password", "must-be-at-least-twelve-characters"),
    (None, "The tokenizer splits text; api_key_header names the header."),
    (None, "secret management: HashiCorp-Vault-or-AWS-Secrets-Manager"),
    (None, "Secrets: managed-by-sops-and-age; tokens: short-lived-oidc"),
    (None, "The token is a 40-character-hex string; the secret is rotated every ninety days."),
    ("password_policy", "minimum-length-12-mixed-case"),
    ("token_type", "bearer"),
    ("max_tokens", "4096"),
    ("secret_name", "projects/my-project/secrets/api-key/versions/latest"),
    ("passwordless", "true"),
    ("TOKEN_URL", "https://oauth2.googleapis.com/token"),
    ("private_key_path", "~/.ssh/id_ed25519"),
    ("secretRef", "my-app-secrets"),
    ("api_key_env", "OPENAI_API_KEY"),
    ("TOKEN_EXPIRY_SECONDS", "86400"),
    ("token", "ANTHROPIC_API_KEY_FROM_THE_ENVIRONMENT"),
    ("password", "correct-horse-battery-staple"),
    ("auth", "oauth2-client-credentials-flow"),
    ("credential_type", "service-principal-with-certificate"),
]

CODE: list[Item] = [
    (None, "credential = OnBehalfOfCredential(tenant_id=t)"),
    (None, "credential = DefaultAzureCredential()"),
    (None, "credentials = ClientSecretCredential(tenant_id, client_id, client_secret)"),
    (None, 'token = get_bearer_token_provider(credential, "https://cognitiveservices.azure.com/.default")'),
    (None, 'secret = client.get_secret("db-password").value'),
    (None, 'password = getpass.getpass("Password: ")'),
    (None, 'api_key = config["openai"]["api_key"]'),
    (None, "self.secret_key = settings.SECRET_KEY"),
    (None, "const token = await getAccessToken({ scopes })"),
    (None, 'token: str = Field(..., description="The access token")'),
    (None, 'access_token = response.json()["access_token"]'),
    (None, 'keyring.get_password("service", "user")'),
    (None, 'const secret = crypto.randomBytes(32).toString("hex");'),
    (None, "secret = secrets.token_urlsafe(32)"),
    (None, 'TOKEN = os.environ.get("TOKEN", "")'),
    (None, 'auth_token = request.headers.get("X-Auth-Token")'),
    ("credential", "ManagedIdentityCredential"),
    ("credentials", "AzureCliCredential"),
    (None, 'api_key = os.environ["OPENAI_API_KEY"]'),
    (None, "const token = process.env.GITHUB_TOKEN;"),
    (None, 'var key = Environment.GetEnvironmentVariable("AZURE_OPENAI_KEY");'),
    (None, "password: ${DB_PASSWORD}"),
    (None, 'headers = {"Authorization": f"Bearer {api_key}"}'),
    (None, 'def get_secret(name: str) -> str:\n    return vault.read(f"secret/{name}")["data"]["value"]'),
    (None, 'tokenizer = AutoTokenizer.from_pretrained("bert-base-uncased")'),
    (None, "s3 = boto3.client('s3', aws_secret_access_key=os.environ['AWS_SECRET_ACCESS_KEY'])"),
    (None, "SECRET_KEY = get_random_secret_key()"),
    (None, "password_hash = bcrypt.hashpw(password, salt)"),
]


def harmless(seed: int = 11) -> dict[str, list[Item]]:
    """The corpus by category."""
    rng = random.Random(seed)
    return {
        "placeholders": placeholders(),
        "contract addresses": contract_addresses(rng),
        "hashes": hashes(rng),
        "uuids": uuids(rng),
        "base64 images": images(rng),
        "public keys": public_keys(rng),
        "prose about secrets": PROSE,
        "code naming credentials": CODE,
    }
