"""Schemathesis hooks for fuzz/api.sh.

A few request rules cannot be written in the OpenAPI document, because they
depend on the clock, on state, or on two places of one request at once.
Schemathesis draws "positive" cases from the schema alone and expects every
one of them to be accepted, so for these rules it would draw values the
server rightly refuses. Here each positive case is made to follow them, the
way a real client does; negative cases are left as drawn, so the server's
refusal of the same values is still tested.

- `expiresAt` must lie in the future (a date-time in the document).
- `cursor` must be a `nextCursor` the server issued: base64url of text.
  The document states its alphabet; an arbitrary string of that alphabet
  need not decode, so the drawn text is encoded instead.
  The audit log's cursor is base64url of a position (digits), so there the
  drawn text becomes a position.
- `POST /v1/tokens`: a `scope` is granted only by roles the user holds
  (state the document cannot know), so positive cases ask for none.
- `POST /v1/api-keys/verify`: the key comes in `X-Api-Key` or in the body,
  exactly one of them; OpenAPI has no rule across a header and the body.
- `PUT /v1/tenants/{id}/login-policy`: each combination names distinct
  factors that `factors` allows, `backup_code` is not required itself, no
  combination repeats, the idle timeout is not longer than the lifetime
  (rules across fields), and `allowedRedirectUris` are absolute http(s)
  URLs without a fragment (a URL rule the document states only as text).
- `POST /auth/logins`: a `redirectUri` must be one the tenant's login
  policy registered, and an `sso` provider one the policy allows (state),
  so positive cases name neither.
- `PUT /v1/users/{id}/password`: a new password is refused when it is on
  the common-password list or is the user's own address (state), so
  positive cases send a long uncommon one built from the drawn text.
- `PUT /v1/trusted-issuers/{id}`: one trusted issuer per `iss` in a mode,
  exactly one of `jwksUri` (an absolute http(s) URL) and `jwks`, and a
  rule names a user or a tenant that exists (state); positive cases get
  an issuer of their own id, a key URL, and rules that provision users into
  the workspace (`LATCHKEY_FUZZ_WORKSPACE`), keeping the drawn conditions,
  roles and lifetimes where they are valid.
- `PUT /v1/identity-providers/{id}`: the fields a type needs depend on the
  type (a rule across fields), a URL must be an absolute http(s) URL, and a
  provisioning tenant must exist (state); positive cases become OpenID
  Connect providers with an issuer URL, a client id and secret, or (for
  odd-length ids) SAML providers with an entity id, SSO URL and the test
  IdP's certificate, and keep the drawn scopes, mapping and switches where
  they are valid.
"""

import base64
import os
from datetime import datetime, timedelta, timezone

import schemathesis
from schemathesis import GenerationMode

DEFAULT_LIFETIME = 2592000
DEFAULT_IDLE = 604800


def _follow_policy_rules(body):
    require = body.get("require")
    if isinstance(require, list):
        combos = []
        for combo in require:
            if not isinstance(combo, list):
                continue
            distinct = []
            for factor in combo:
                if factor != "backup_code" and factor not in distinct:
                    distinct.append(factor)
            distinct = distinct[:4]
            if distinct and sorted(distinct) not in [sorted(c) for c in combos]:
                combos.append(distinct)
        body["require"] = combos or [["password"]]
    factors = body.get("factors")
    if not isinstance(factors, list) and isinstance(body.get("require"), list):
        # Left out, `factors` is the built-in ones: no identity provider.
        if any(str(f).startswith("sso:") for combo in body["require"] for f in combo):
            factors = body["factors"] = ["password", "email_code", "sms_code", "magic_link", "totp", "backup_code"]
    if isinstance(factors, list):
        needed = body["require"] if isinstance(body.get("require"), list) else [["password"], ["email_code"], ["magic_link"]]
        for combo in needed:
            for factor in combo:
                if factor not in factors:
                    factors.append(factor)
    uris = body.get("allowedRedirectUris")
    if isinstance(uris, list):
        body["allowedRedirectUris"] = [f"https://app.example/cb/{i}" for i in range(len(uris))]
    lifetime = body.get("sessionLifetimeSeconds")
    idle = body.get("idleTimeoutSeconds")
    limit = lifetime if isinstance(lifetime, (int, float)) else DEFAULT_LIFETIME
    if isinstance(idle, (int, float)) and idle > limit:
        body["idleTimeoutSeconds"] = limit
    elif idle is None and limit < DEFAULT_IDLE:
        body["idleTimeoutSeconds"] = limit


def _follow_trusted_issuer_rules(case, body):
    ident = (case.path_parameters or {}).get("id", "fuzz")
    body["issuer"] = f"https://issuer.example/{ident}"
    body.pop("jwks", None)
    body["jwksUri"] = "https://keys.example/jwks"
    audiences = body.get("audiences") if isinstance(body.get("audiences"), list) else []
    body["audiences"] = [f"aud-{i}" for i in range(max(1, min(len(audiences), 16)))]
    rules = [r for r in body.get("rules") or [] if isinstance(r, dict)][:64] or [{}]
    for rule in rules:
        when = rule.get("when") if isinstance(rule.get("when"), dict) else {}
        when = {k: v for k, v in when.items() if len(k.encode()) <= 128 and k and isinstance(v, str) and 0 < len(v.encode()) <= 512}
        rule["when"] = dict(list(when.items())[:16]) or {"sub": "*"}
        rule.pop("userId", None)
        rule["provision"] = rule.get("provision") if isinstance(rule.get("provision"), dict) else {}
        rule["tenantId"] = os.environ.get("LATCHKEY_FUZZ_WORKSPACE", "fuzz-ws")
    body["rules"] = rules


NQCHAR = set(chr(c) for c in range(0x21, 0x7F)) - {'"', "\\"}


SAML_CERT = open(os.path.join(os.path.dirname(__file__), "..", "tests", "idp", "saml", "idp-cert.pem")).read()


def _follow_identity_provider_rules(case, body):
    ident = (case.path_parameters or {}).get("id", "fuzz")
    for field in ("authorizationUrl", "tokenUrl", "userinfoUrl", "metadataXml", "entityId", "ssoUrl", "certificatePem"):
        body.pop(field, None)
    if len(ident) % 2:
        # A SAML provider: its IdP named field by field, no OAuth fields.
        for field in ("issuer", "clientId", "clientSecret", "scopes"):
            body.pop(field, None)
        body["type"] = "saml"
        body["entityId"] = f"https://idp.example/{ident}/metadata"
        body["ssoUrl"] = f"https://idp.example/{ident}/sso"
        body["certificatePem"] = SAML_CERT
    else:
        body.pop("allowSha1", None)
        body.pop("clockSkewSeconds", None)
        body["type"] = "oidc"
        body["issuer"] = f"https://idp.example/{ident}"
        body["clientId"] = "latchkey-fuzz"
        body["clientSecret"] = "fuzz-client-secret"
    scopes = body.get("scopes")
    if isinstance(scopes, list):
        body["scopes"] = [s for s in scopes if isinstance(s, str) and 0 < len(s) <= 128 and set(s) <= NQCHAR][:32]
    mapping = body.get("claimMapping")
    if isinstance(mapping, dict):
        body["claimMapping"] = {k: v for k, v in mapping.items()
                                if k in ("subject", "email", "emailVerified", "name") and isinstance(v, str) and 0 < len(v.encode()) <= 128}
    provisioning = body.get("provisioning")
    if isinstance(provisioning, dict) and provisioning.get("tenantId") is not None:
        provisioning["tenantId"] = os.environ.get("LATCHKEY_FUZZ_WORKSPACE", "fuzz-ws")


# Far enough ahead that a slow run does not reach it.
FUTURE = timedelta(days=1)


def _positive(case):
    meta = case.meta
    return meta is None or meta.generation.mode == GenerationMode.POSITIVE


def _in_future(value):
    try:
        at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return at.tzinfo is not None and at > datetime.now(timezone.utc) + timedelta(minutes=5)
    except ValueError:
        return False


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx, value):
    # POST /v1/import's body is text, one record per line. A generated value
    # that is not text (negative cases) has no NDJSON form: it is sent as an
    # empty body, which the server refuses (400) like any body without a
    # record.
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return b""


@schemathesis.hook
def map_case(context, case):
    if not _positive(case):
        return case
    operation = context.operation
    body = case.body if isinstance(case.body, dict) else None
    if body is not None and body.get("expiresAt") is not None and not _in_future(body["expiresAt"]):
        body["expiresAt"] = (datetime.now(timezone.utc) + FUTURE).isoformat().replace("+00:00", "Z")
    query = case.query if isinstance(case.query, dict) else None
    if query is not None and isinstance(query.get("cursor"), str):
        query["cursor"] = base64.urlsafe_b64encode(query["cursor"].encode()).decode().rstrip("=")
    if operation is None:
        return case
    if operation.path == "/v1/audit-events" and query is not None and isinstance(query.get("cursor"), str):
        position = str(sum(query["cursor"].encode()) % 10**12 + 1)
        query["cursor"] = base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")
    if operation.method.upper() == "PUT" and operation.path == "/v1/tenants/{id}/login-policy" and body is not None:
        _follow_policy_rules(body)
    if operation.method.upper() == "PUT" and operation.path == "/v1/trusted-issuers/{id}" and body is not None:
        _follow_trusted_issuer_rules(case, body)
    if operation.method.upper() == "PUT" and operation.path == "/v1/identity-providers/{id}" and body is not None:
        _follow_identity_provider_rules(case, body)
    if operation.method.upper() == "POST" and operation.path == "/auth/logins" and body is not None:
        body.pop("redirectUri", None)
        # An SSO start needs a provider the tenant's policy allows (state).
        body.pop("sso", None)
    if operation.method.upper() == "PUT" and operation.path == "/v1/users/{id}/password" and body is not None:
        drawn = str(body.get("password", ""))[:200]
        body["password"] = f"lk-{drawn}-orbit-kettle-9"
    if operation.method.upper() == "POST" and operation.path == "/v1/import" and isinstance(case.body, str):
        # A positive body is text with at least one record: a valid one first
        # (the rest, random text, is reported per line).
        case.body = '{"type":"role","name":"fuzz-import","permissions":[]}\n' + case.body
    if operation.method.upper() == "POST" and operation.path == "/v1/tokens" and body is not None:
        body.pop("scope", None)
    if operation.method.upper() == "POST" and operation.path == "/v1/api-keys/verify":
        headers = case.headers if isinstance(case.headers, dict) else {}
        in_header = {name for name, value in headers.items() if name.lower() == "x-api-key" and value is not None}
        in_body = body is not None and body.get("key") is not None
        if in_header and in_body:
            for name in in_header:
                del headers[name]
        elif not in_header and not in_body:
            case.headers = {**headers, "X-Api-Key": "lk_test_key_not_a_real_one"}
    return case


@schemathesis.hook
def before_call(context, case, **kwargs):
    # The stateful phase fills links (a created user's id into a rule's
    # `userId`) after `map_case`; a rule that provisions names no user.
    if not _positive(case):
        return
    operation = getattr(case, "operation", None)
    body = case.body if isinstance(case.body, dict) else None
    if operation is None or body is None:
        return
    if operation.method.upper() == "PUT" and operation.path == "/v1/trusted-issuers/{id}":
        for rule in body.get("rules") or []:
            if isinstance(rule, dict) and "provision" in rule:
                rule.pop("userId", None)
