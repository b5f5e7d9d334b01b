//! Command-line definitions: every subcommand, flag and environment variable
//! of `latchkey`, as clap derive types with no behaviour of their own.

use std::path::PathBuf;

use clap::{ArgAction, ArgGroup, Args, Parser, Subcommand, ValueEnum};
use latchkey_server::Settings;
use latchkey_types::api_keys::RateLimit;
use latchkey_types::ids::{RoleName, ScopeToken, TenantId};
use latchkey_types::{JsonObject, Mode, UserKind};
use time::OffsetDateTime;

/// Where admin commands and `token` look for the server by default.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// Latchkey: machine-to-machine authentication. Runs the server, administers
/// it over its HTTP API and gets OAuth access tokens.
#[derive(Debug, Parser)]
#[command(name = "latchkey", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Latchkey server.
    Serve(Box<ServeArgs>),
    /// Show the workspace (the root tenant) as the admin key's mode sees it.
    Workspace(WorkspaceArgs),
    /// Create, read, change and delete tenants.
    Tenants(TenantsArgs),
    /// Create, read, change and delete users (machines and people).
    Users(UsersArgs),
    /// Manage the role catalog: which permissions each role grants.
    Roles(RolesArgs),
    /// Manage trusted issuers: whose JWTs (Kubernetes service-account
    /// tokens, CI jobs' OIDC tokens) are exchanged for Latchkey tokens.
    TrustedIssuers(TrustedIssuersArgs),
    /// Manage identity providers: OpenID Connect and OAuth 2.0 sign-in
    /// (the `sso:<id>` login factor).
    IdentityProviders(IdentityProvidersArgs),
    /// Manage memberships: the roles a user holds in a tenant.
    Members(MembersArgs),
    /// Manage a user's client secrets.
    Secrets(SecretsArgs),
    /// Show the `authorization` claim a token of this user would carry.
    Authorization(AuthorizationArgs),
    /// Manage API keys: long-lived keys of a user, scoped to a tenant.
    ApiKeys(ApiKeysArgs),
    /// List and rotate the signing keys of the admin key's mode.
    SigningKeys(SigningKeysArgs),
    /// Read the audit log of the admin key's mode, newest first.
    Audit(AuditArgs),
    /// Import records from an NDJSON file (users, tenants, roles,
    /// memberships, API keys and client secrets made by another system),
    /// into the admin key's mode. Running it twice changes nothing.
    Import(ImportArgs),
    /// Write every record of the admin key's mode as NDJSON to stdout
    /// (credentials as digests, never values), in the format `import` reads.
    Export(ExportArgs),
    /// Get an access token with the client-credentials grant.
    Token(TokenArgs),
    /// Check an access token (against the issuer's JWKS) or an API key
    /// (with the verify endpoint) and print the verdict.
    Verify(VerifyArgs),
    /// Log in as a user (a machine or a person) with every factor the
    /// login policy asks for, and keep the session in a file only you can
    /// read.
    Login(LoginArgs),
    /// End the session kept by `latchkey login` and delete its file.
    Logout(SessionArgs),
    /// Show the logged-in user and session, or print a fresh access token.
    Me(MeArgs),
}

/// Where `latchkey login` keeps its session.
#[derive(Debug, Clone, Args)]
pub struct SessionArgs {
    /// The session file [default: $XDG_CONFIG_HOME/latchkey/session.json,
    /// else ~/.config/latchkey/session.json]. It holds the refresh token:
    /// it is created readable by its owner only.
    #[arg(long, env = "LATCHKEY_SESSION_FILE", value_name = "FILE")]
    pub session_file: Option<PathBuf>,
}

/// `latchkey login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Base URL of the Latchkey server.
    #[arg(long, env = "LATCHKEY_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// Who logs in: an email, username, phone number or user id.
    #[arg(long, env = "LATCHKEY_IDENTIFIER", value_name = "IDENTIFIER")]
    pub identifier: String,
    /// The tenant the session is for [default: the workspace].
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    /// The mode to log in to.
    #[arg(long, value_enum, default_value = "test")]
    pub mode: ModeArg,
    /// Read the password from the first line of standard input (for
    /// machines; otherwise it is asked for without echo).
    #[arg(long)]
    pub password_stdin: bool,
    /// A file holding the TOTP secret (base32, as enrolment showed it):
    /// codes are computed from it instead of asked for (for machines).
    #[arg(long, value_name = "FILE")]
    pub totp_secret_file: Option<PathBuf>,
    /// Seconds to wait for a magic link to be confirmed [default: until
    /// the login expires].
    #[arg(long, value_name = "SECONDS")]
    pub wait: Option<u64>,
    /// Where to keep the session.
    #[command(flatten)]
    pub session: SessionArgs,
}

/// `latchkey me`.
#[derive(Debug, Args)]
pub struct MeArgs {
    /// Print a current access token of the session (refreshed when it has
    /// expired) instead of the user, for `Authorization: Bearer`.
    #[arg(long)]
    pub access_token: bool,
    /// Print the raw JSON of `GET /v1/me`.
    #[arg(long, conflicts_with = "access_token")]
    pub json: bool,
    /// Where the session is kept.
    #[command(flatten)]
    pub session: SessionArgs,
}

/// `latchkey serve`.
#[derive(Debug, Args)]
#[command(after_help = "\
Precedence: flags, then environment variables, then the configuration file, \
then defaults.

Environment only (never flags, so they stay out of the process list):
  LATCHKEY_WORKSPACE_ID              workspace id used at first start
  LATCHKEY_WORKSPACE_NAME            workspace name used at first start
  LATCHKEY_BOOTSTRAP_TEST_ADMIN_KEY  test-mode admin key to install at first start
  LATCHKEY_BOOTSTRAP_LIVE_ADMIN_KEY  live-mode admin key to install at first start

Without bootstrap keys, the first start generates one admin key per mode and \
prints it once on stderr.

Logging follows RUST_LOG (default: info).")]
pub struct ServeArgs {
    /// Every server setting, declared once with its flag, its environment
    /// variable and its key in the file.
    #[command(flatten)]
    pub settings: Settings,
    /// TOML configuration file [default: ./latchkey.toml when it exists].
    #[arg(long, env = "LATCHKEY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// How admin commands reach the server. The options are global to the
/// subcommand group, so both `tenants --json list` and `tenants list --json`
/// work.
#[derive(Debug, Args)]
pub struct AdminOpts {
    /// Base URL of the Latchkey server.
    #[arg(long, env = "LATCHKEY_URL", default_value = DEFAULT_URL, global = true)]
    pub url: String,
    /// Admin key. Prefer the LATCHKEY_ADMIN_KEY environment variable: a flag
    /// shows in the process list and in shell history.
    #[arg(
        long,
        env = "LATCHKEY_ADMIN_KEY",
        value_name = "KEY",
        hide_env_values = true,
        global = true
    )]
    pub admin_key: Option<String>,
    /// Print the raw JSON response body, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

/// `?limit=` and `?cursor=` of list commands.
#[derive(Debug, Clone, Default, Args)]
pub struct PageArgs {
    /// Items per page (1 to 1000; the server's default is 50).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: Option<u32>,
    /// Start at this cursor (the `nextCursor` of a previous page).
    #[arg(long, value_name = "CURSOR", conflicts_with = "all")]
    pub cursor: Option<String>,
    /// Follow `nextCursor` and fetch every page.
    #[arg(long)]
    pub all: bool,
}

/// `latchkey workspace`.
#[derive(Debug, Args)]
pub struct WorkspaceArgs {
    /// Connection and output options.
    #[command(flatten)]
    pub admin: AdminOpts,
}

/// `latchkey tenants`.
#[derive(Debug, Args)]
pub struct TenantsArgs {
    /// Connection and output options.
    #[command(flatten)]
    pub admin: AdminOpts,
    /// What to do with tenants.
    #[command(subcommand)]
    pub command: TenantsCommand,
}

/// `latchkey tenants …`.
#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Create a tenant.
    Create(TenantCreate),
    /// Show one tenant.
    Get {
        /// Tenant id.
        id: String,
    },
    /// List tenants.
    List(TenantList),
    /// Rename, move or reconfigure a tenant.
    Update(TenantUpdate),
    /// Delete a tenant (it must have no children and no members).
    Delete {
        /// Tenant id.
        id: String,
    },
}

/// `latchkey tenants create`.
#[derive(Debug, Args)]
pub struct TenantCreate {
    /// Id (`[a-z0-9][a-z0-9_-]{0,62}`); 8 random characters when absent.
    #[arg(long)]
    pub id: Option<TenantId>,
    /// Display name.
    #[arg(long)]
    pub name: String,
    /// Parent tenant [default: the workspace].
    #[arg(long, value_name = "TENANT")]
    pub parent: Option<String>,
    /// Make the tenant a boundary: it inherits no roles from its parent.
    #[arg(long)]
    pub no_cascade: bool,
    /// Metadata, a JSON object.
    #[arg(long, value_name = "JSON", value_parser = parse_json_object)]
    pub metadata: Option<JsonObject>,
}

/// `latchkey tenants list`.
#[derive(Debug, Args)]
pub struct TenantList {
    /// Only the children of this tenant.
    #[arg(long, value_name = "TENANT")]
    pub parent: Option<String>,
    /// Paging.
    #[command(flatten)]
    pub page: PageArgs,
}

/// `latchkey tenants update`.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("changes")
        .required(true)
        .multiple(true)
        .args(["name", "parent", "cascade", "metadata"])
))]
pub struct TenantUpdate {
    /// Tenant id.
    pub id: String,
    /// New display name.
    #[arg(long)]
    pub name: Option<String>,
    /// Move the tenant under this parent.
    #[arg(long, value_name = "TENANT")]
    pub parent: Option<String>,
    /// Whether the tenant inherits roles from its parent.
    #[arg(long, value_name = "true|false", action = ArgAction::Set)]
    pub cascade: Option<bool>,
    /// Replace the metadata with this JSON object.
    #[arg(long, value_name = "JSON", value_parser = parse_json_object)]
    pub metadata: Option<JsonObject>,
}

/// `latchkey users`.
#[derive(Debug, Args)]
pub struct UsersArgs {
    /// Connection and output options.
    #[command(flatten)]
    pub admin: AdminOpts,
    /// What to do with users.
    #[command(subcommand)]
    pub command: UsersCommand,
}

/// `latchkey users …`.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user.
    Create(UserCreate),
    /// Show one user.
    Get {
        /// User id (`usr_…`).
        id: String,
    },
    /// List users.
    List(UserList),
    /// Change a user.
    Update(UserUpdate),
    /// Delete a user and every credential of it.
    Delete {
        /// User id (`usr_…`).
        id: String,
    },
}

/// `--kind` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// A server, service, device or job.
    Machine,
    /// A person.
    Human,
}

impl From<KindArg> for UserKind {
    fn from(k: KindArg) -> UserKind {
        match k {
            KindArg::Machine => UserKind::Machine,
            KindArg::Human => UserKind::Human,
        }
    }
}

/// `latchkey users create`.
#[derive(Debug, Args)]
pub struct UserCreate {
    /// Display name.
    #[arg(long)]
    pub name: String,
    /// Machine or human [default: machine].
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
    /// Email address.
    #[arg(long)]
    pub email: Option<String>,
    /// User name, unique within the mode.
    #[arg(long)]
    pub username: Option<String>,
    /// The user's id in the system it comes from (unique within the mode).
    #[arg(long, value_name = "ID")]
    pub external_id: Option<String>,
    /// Phone number.
    #[arg(long, value_name = "PHONE")]
    pub phone: Option<String>,
    /// The email is known to be the user's.
    #[arg(long)]
    pub email_verified: bool,
    /// The phone number is known to be the user's.
    #[arg(long)]
    pub phone_verified: bool,
    /// Metadata, a JSON object.
    #[arg(long, value_name = "JSON", value_parser = parse_json_object)]
    pub metadata: Option<JsonObject>,
    /// Claims added to the user's access tokens, a JSON object.
    #[arg(long, value_name = "JSON", value_parser = parse_json_object)]
    pub custom_claims: Option<JsonObject>,
    /// Create the user disabled.
    #[arg(long)]
    pub disabled: bool,
    /// Access-token lifetime for this user [default: the workspace's].
    #[arg(long, value_name = "SECONDS")]
    pub token_ttl_seconds: Option<i64>,
}

/// `latchkey users update`.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("changes")
        .required(true)
        .multiple(true)
        .args([
            "name", "email", "clear_email", "username", "clear_username", "phone",
            "clear_phone", "metadata", "custom_claims", "enable", "disable",
            "token_ttl_seconds", "clear_token_ttl",
        ])
))]
pub struct UserUpdate {
    /// User id (`usr_…`).
    pub id: String,
    /// New display name.
    #[arg(long)]
    pub name: Option<String>,
    /// New email address.
    #[arg(long, conflicts_with = "clear_email")]
    pub email: Option<String>,
    /// Remove the email address.
    #[arg(long)]
    pub clear_email: bool,
    /// New user name.
    #[arg(long, conflicts_with = "clear_username")]
    pub username: Option<String>,
    /// Remove the user name.
    #[arg(long)]
    pub clear_username: bool,
    /// New phone number.
    #[arg(long, value_name = "PHONE", conflicts_with = "clear_phone")]
    pub phone: Option<String>,
    /// Remove the phone number.
    #[arg(long)]
    pub clear_phone: bool,
    /// Mark the email proven (true) or not (false).
    #[arg(long, value_name = "BOOL")]
    pub email_verified: Option<bool>,
    /// Mark the phone number proven (true) or not (false).
    #[arg(long, value_name = "BOOL")]
    pub phone_verified: Option<bool>,
    /// Replace the metadata with this JSON object.
    #[arg(long, value_name = "JSON", value_parser = parse_json_object)]
    pub metadata: Option<JsonObject>,
    /// Replace the custom claims with this JSON object.
    #[arg(long, value_name = "JSON", value_parser = parse_json_object)]
    pub custom_claims: Option<JsonObject>,
    /// Enable the user.
    #[arg(long, conflicts_with = "disable")]
    pub enable: bool,
    /// Disable the user: every credential of it stops working at once.
    #[arg(long)]
    pub disable: bool,
    /// New access-token lifetime for this user.
    #[arg(long, value_name = "SECONDS", conflicts_with = "clear_token_ttl")]
    pub token_ttl_seconds: Option<i64>,
    /// Fall back to the workspace's token lifetime.
    #[arg(long)]
    pub clear_token_ttl: bool,
}

/// `latchkey users list`.
#[derive(Debug, Args)]
pub struct UserList {
    /// Only machines or only people.
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
    /// Only members of this tenant.
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    /// Paging.
    #[command(flatten)]
    pub page: PageArgs,
}

/// `latchkey signing-keys`.
#[derive(Debug, Args)]
pub struct SigningKeysArgs {
    /// Connection and output options.
    #[command(flatten)]
    pub admin: AdminOpts,
    /// What to do with signing keys.
    #[command(subcommand)]
    pub command: SigningKeysCommand,
}

/// `latchkey signing-keys …`.
#[derive(Debug, Subcommand)]
pub enum SigningKeysCommand {
    /// List the keys with their phase (next, active, retired, removed).
    List,
    /// Add a new key: published in the JWKS at once, signing after the
    /// publish-ahead delay (so every verifier has it first).
    Rotate {
        /// Algorithm of the new key: EdDSA, ES256 or RS256 [default: the
        /// current key's].
        #[arg(long, value_name = "ALG")]
        alg: Option<String>,
        /// Sign with the new key at once. Verifiers holding a cached JWKS
        /// may then meet an unknown kid until they refresh.
        #[arg(long)]
        immediate: bool,
    },
}

/// `latchkey roles`.
#[derive(Debug, Args)]
pub struct RolesArgs {
    /// Connection and output options.
    #[command(flatten)]
    pub admin: AdminOpts,
    /// What to do with roles.
    #[command(subcommand)]
    pub command: RolesCommand,
}

/// `latchkey roles …`.
#[derive(Debug, Subcommand)]
pub enum RolesCommand {
    /// Create or replace a role of the catalog.
    Set(RoleSet),
    /// List the role catalog.
    List {
        /// Paging.
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one role.
    Get {
        /// Role name.
        name: String,
    },
    /// Delete a role from the catalog.
    Delete {
        /// Role name.
        name: String,
    },
}

/// `latchkey roles set`.
#[derive(Debug, Args)]
pub struct RoleSet {
    /// Role name (`[a-z0-9][a-z0-9:_-]{0,63}`).
    pub name: String,
    /// A permission (OAuth scope token such as `telemetry:write`) the role
    /// grants; repeat for several. The list replaces the role's permissions.
    #[arg(long = "permission", value_name = "PERMISSION")]
    pub permissions: Vec<ScopeToken>,
    /// What the role is for.
    #[arg(long)]
    pub description: Option<String>,
}

/// `latchkey trusted-issuers`.
#[derive(Debug, Args)]
pub struct TrustedIssuersArgs {
    /// Connection and output options.
    #[command(flatten)]
    pub admin: AdminOpts,
    /// What to do with trusted issuers.
    #[command(subcommand)]
    pub command: TrustedIssuersCommand,
}

/// `latchkey trusted-issuers …`.
#[derive(Debug, Subcommand)]
pub enum TrustedIssuersCommand {
    /// Create or replace a trusted issuer from its JSON configuration
    /// (`{issuer, jwksUri | jwks, audiences, rules}`, as in
    /// `PUT /v1/trusted-issuers/{id}`).
    Put {
        /// Trusted issuer id (`[a-z0-9][a-z0-9_-]{0,62}`).
        id: String,
        /// The JSON file; `-` reads standard input.
        #[arg(long, value_name = "FILE")]
        file: std::path::PathBuf,
    },
    /// List the trusted issuers.
    List {
        /// Paging.
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one trusted issuer with its rules.
    Get {
        /// Trusted issuer id.
        id: String,
    },
    /// Delete a trusted issuer: its tokens are refused from then on.
    Delete {
        /// Trusted issuer id.
        id: String,
    },
}

/// `latchkey identity-providers`.
#[derive(Debug, Args)]
pub struct IdentityProvidersArgs {
    /// Connection and output options.
    #[command(flatten)]
    pub admin: AdminOpts,
    /// What to do with identity providers.
    #[command(subcommand)]
    pub command: IdentityProvidersCommand,
}

/// `latchkey identity-providers …`.
#[derive(Debug, Subcommand)]
pub enum IdentityProvidersCommand {
    /// Create or replace an identity provider from its JSON configuration
    /// (as in `PUT /v1/identity-providers/{id}`). Prints the callback URL
    /// to register at the provider. The client secret is best given in
    /// the file, or left out of a replacement to keep the stored one.
    Put {
        /// Provider id (`[a-z0-9][a-z0-9_-]{0,62}`), as in `sso:<id>`.
        id: String,
        /// The JSON file; `-` reads standard input.
        #[arg(long, value_name = "FILE")]
        file: std::path::PathBuf,
    },
    /// List the identity providers.
    List {
        /// Paging.
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one identity provider (never its client secret).
    Get {
        /// Provider id.
        id: String,
    },
    /// Delete an identity provider and its links to users.
    Delete {
        /// Provider id.
        id: String,
    },
}

/// `latchkey members`.
#[derive(Debug, Args)]
pub struct MembersArgs {
    /// Connection and output options.
    #[command(flatten)]
    pub admin: AdminOpts,
    /// What to do with memberships.
    #[command(subcommand)]
    pub command: MembersCommand,
}

/// `latchkey members …`.
#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    /// Set the roles a user holds directly in a tenant (no --role ends the
    /// membership).
    Set(MemberSet),
    /// List the members of a tenant and their direct roles.
    List {
        /// Tenant id.
        tenant: String,
        /// Paging.
        #[command(flatten)]
        page: PageArgs,
    },
}

/// `latchkey members set`.
#[derive(Debug, Args)]
pub struct MemberSet {
    /// Tenant id (the workspace id for global roles).
    pub tenant: String,
    /// User id (`usr_…`).
    pub user: String,
    /// A role the user holds in the tenant; repeat for several. The list
    /// replaces the user's roles there; none removes the membership.
    #[arg(long = "role", value_name = "ROLE")]
    pub roles: Vec<RoleName>,
}

/// `latchkey secrets`.
#[derive(Debug, Args)]
pub struct SecretsArgs {
    /// Connection and output options.
    #[command(flatten)]
    pub admin: AdminOpts,
    /// What to do with client secrets.
    #[command(subcommand)]
    pub command: SecretsCommand,
}

/// `latchkey secrets …`.
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Create a client secret (it is shown once).
    Create(SecretCreate),
    /// List a user's client secrets (never their values).
    List {
        /// User id (`usr_…`).
        user: String,
        /// Paging.
        #[command(flatten)]
        page: PageArgs,
    },
    /// Delete (revoke) a client secret.
    Delete {
        /// User id (`usr_…`).
        user: String,
        /// Secret id (`sec_…`).
        secret_id: String,
    },
}

/// `latchkey secrets create`.
#[derive(Debug, Args)]
pub struct SecretCreate {
    /// User id (`usr_…`).
    pub user: String,
    /// A label, such as the host the secret is deployed to.
    #[arg(long)]
    pub name: Option<String>,
    /// When the secret stops working (RFC 3339, e.g. 2030-01-31T00:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_rfc3339)]
    pub expires_at: Option<OffsetDateTime>,
}

/// `latchkey api-keys`.
#[derive(Debug, Args)]
pub struct ApiKeysArgs {
    /// Connection and output options.
    #[command(flatten)]
    pub admin: AdminOpts,
    /// What to do with API keys.
    #[command(subcommand)]
    pub command: ApiKeysCommand,
}

/// `latchkey api-keys …`.
#[derive(Debug, Subcommand)]
pub enum ApiKeysCommand {
    /// Create an API key (its value is shown once).
    Create(ApiKeyCreate),
    /// List API keys (never their values).
    List(ApiKeyList),
    /// Show one API key (never its value).
    Get {
        /// API key id (`key_…`).
        id: String,
    },
    /// Revoke an API key: every value of it stops working at once.
    Revoke {
        /// API key id (`key_…`).
        id: String,
    },
    /// Give an API key a new value (shown once); the previous value keeps
    /// working for the grace period.
    Rotate {
        /// API key id (`key_…`).
        id: String,
        /// How long the previous value keeps working [default: 0, it stops
        /// at once; at most 30 days].
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(i64).range(0..))]
        grace_period: Option<i64>,
    },
}

/// `latchkey api-keys create`.
#[derive(Debug, Args)]
pub struct ApiKeyCreate {
    /// The user the key authenticates as (`usr_…`).
    #[arg(long, value_name = "USER")]
    pub user: String,
    /// The tenant the key is scoped to [default: the workspace].
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    /// A label, such as the device or service that holds the key.
    #[arg(long)]
    pub name: Option<String>,
    /// Narrow the key to this role (of those the user holds in the tenant);
    /// repeat for several. Without --role the key carries all of them.
    #[arg(long = "role", value_name = "ROLE")]
    pub roles: Vec<RoleName>,
    /// When the key stops working (RFC 3339, e.g. 2030-01-31T00:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_rfc3339)]
    pub expires_at: Option<OffsetDateTime>,
    /// Metadata, a JSON object.
    #[arg(long, value_name = "JSON", value_parser = parse_json_object)]
    pub metadata: Option<JsonObject>,
    /// At most LIMIT uses per window of WINDOW_SECONDS, e.g. 100/60.
    #[arg(long, value_name = "LIMIT/WINDOW_SECONDS", value_parser = parse_rate_limit)]
    pub rate_limit: Option<RateLimit>,
    /// A budget of uses: each successful verification or token spends one.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    pub remaining: Option<i64>,
}

/// `latchkey api-keys list`.
#[derive(Debug, Args)]
pub struct ApiKeyList {
    /// Only keys of this user.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Only keys scoped to this tenant.
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    /// Paging.
    #[command(flatten)]
    pub page: PageArgs,
}

/// `latchkey import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Connection and output options.
    #[command(flatten)]
    pub admin: AdminOpts,
    /// The NDJSON file (`-` for stdin).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Check every record and count what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The whole file or nothing: one refused line writes nothing at all.
    #[arg(long)]
    pub atomic: bool,
}

/// `latchkey export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Connection options.
    #[command(flatten)]
    pub admin: AdminOpts,
}

/// `latchkey audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Connection and output options.
    #[command(flatten)]
    pub admin: AdminOpts,
    /// Filters and paging.
    #[command(flatten)]
    pub query: AuditQueryArgs,
}

/// The filters and paging of `latchkey audit`.
#[derive(Debug, Args)]
pub struct AuditQueryArgs {
    /// Only events of this action (`api_key.revoked`, `user.created`,
    /// `auth.failures_exceeded`, …).
    #[arg(long, value_name = "ACTION")]
    pub action: Option<String>,
    /// Only events by this actor (`adm_…` admin key or `usr_…` client).
    #[arg(long, value_name = "ID")]
    pub actor: Option<String>,
    /// Only events about this record id (or address).
    #[arg(long, value_name = "ID")]
    pub target: Option<String>,
    /// Only events about this tenant.
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    /// Only events at or after this RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only events before this RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Paging.
    #[command(flatten)]
    pub page: PageArgs,
}

/// `latchkey authorization`.
#[derive(Debug, Args)]
pub struct AuthorizationArgs {
    /// Connection and output options.
    #[command(flatten)]
    pub admin: AdminOpts,
    /// User id (`usr_…`).
    pub user: String,
    /// The token's tenant [default: the workspace].
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
}

/// `latchkey token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Base URL of the Latchkey server.
    #[arg(long, env = "LATCHKEY_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// The client id, which is the user id (`usr_…`). Not needed with
    /// `--subject-token-file`.
    #[arg(long, env = "LATCHKEY_CLIENT_ID", value_name = "ID")]
    pub client_id: Option<String>,
    /// Exchange the token in this file (a Kubernetes projected
    /// service-account token, a CI job's OIDC token) for a Latchkey token,
    /// by RFC 8693 token exchange, instead of authenticating with a client
    /// secret: no secret is stored. A trusted issuer's rule decides whom it
    /// maps to. The file is read at each run (Kubernetes rotates it).
    #[arg(long, value_name = "FILE", conflicts_with = "client_secret")]
    pub subject_token_file: Option<std::path::PathBuf>,
    /// The client secret (or an API key of the user). Prefer the
    /// LATCHKEY_CLIENT_SECRET environment variable: a flag shows in the
    /// process list and in shell history.
    #[arg(
        long,
        env = "LATCHKEY_CLIENT_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub client_secret: Option<String>,
    /// A permission to ask for; repeat, or separate with spaces, for several.
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,
    /// The audience (resource server) the token is for.
    #[arg(long, value_name = "AUDIENCE")]
    pub audience: Option<String>,
    /// Scope the token to this tenant [default: the workspace].
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    /// Print the whole JSON token response instead of only the token.
    #[arg(long)]
    pub json: bool,
    /// Also print the token's decoded header and claims (the signature is NOT
    /// verified).
    #[arg(long)]
    pub decode: bool,
}

/// `--mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Test mode.
    Test,
    /// Live mode.
    Live,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Test => Mode::Test,
            ModeArg::Live => Mode::Live,
        }
    }
}

/// `latchkey verify`.
#[derive(Debug, Args)]
#[command(after_help = "\
An access token is checked locally: the metadata of the mode's issuer \
(live: /.well-known/oauth-authorization-server, test: \
/.well-known/oauth-authorization-server/test) and its keys (its jwks_uri, \
which holds that mode's keys only) are fetched from --url, then the \
signature (with the algorithm of the key, never the token's), typ at+jwt, \
iss, mode, aud, exp and nbf are checked. The mode the token claims is NOT \
trusted: tokens must be live unless --mode test is given.

An API key (lk_<mode>_key_…) is checked by the server's verify endpoint, \
which also spends a use of its budget and counts against its rate limit. The \
caller credential is --caller / LATCHKEY_CALLER (an admin key, an API key or \
an access token), else the admin key (LATCHKEY_ADMIN_KEY); a key of another \
mode than the caller's is invalid (wrong_mode). A live key or caller is never \
sent over plain HTTP.

Exit status: 0 valid, 1 invalid, 2 usage or network error. The value checked \
is never printed.")]
pub struct VerifyArgs {
    /// The access token or API key to check; `-` reads it from stdin, which
    /// keeps it out of the shell history and the process list.
    #[arg(value_name = "TOKEN_OR_KEY")]
    pub value: String,
    /// Base URL of the Latchkey server.
    #[arg(long, env = "LATCHKEY_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// The audience the token must name (your service's identifier)
    /// [default: any audience].
    #[arg(long, value_name = "AUDIENCE")]
    pub audience: Option<String>,
    /// The mode the token must have [default: live]. The token's own claim
    /// is not trusted. For an API key, a key of another mode is invalid
    /// without asking the server.
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// The issuer the token must name [default: the issuer of the server's
    /// metadata for the mode: the server's URL for live, with `/test` after
    /// it for test].
    #[arg(long, value_name = "URL")]
    pub issuer: Option<String>,
    /// The credential that calls the verify endpoint for an API key. Prefer
    /// the LATCHKEY_CALLER environment variable.
    #[arg(
        long,
        env = "LATCHKEY_CALLER",
        value_name = "CREDENTIAL",
        hide_env_values = true
    )]
    pub caller: Option<String>,
    /// Admin key, the caller when --caller is not given. Prefer the
    /// LATCHKEY_ADMIN_KEY environment variable.
    #[arg(
        long,
        env = "LATCHKEY_ADMIN_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub admin_key: Option<String>,
    /// Print the verdict as JSON, for scripts.
    #[arg(long)]
    pub json: bool,
}

/// Parses `--rate-limit LIMIT/WINDOW_SECONDS`.
fn parse_rate_limit(s: &str) -> Result<RateLimit, String> {
    let usage = || format!("expected LIMIT/WINDOW_SECONDS such as 100/60, not {s:?}");
    let (limit, window) = s.split_once('/').ok_or_else(usage)?;
    let number = |v: &str| v.trim().parse::<i64>().ok().filter(|n| *n >= 1);
    match (number(limit), number(window)) {
        (Some(limit), Some(window_seconds)) => Ok(RateLimit {
            limit,
            window_seconds,
        }),
        _ => Err(format!("{}; both numbers must be 1 or more", usage())),
    }
}

/// Parses a JSON object argument (`--metadata`, `--custom-claims`).
fn parse_json_object(s: &str) -> Result<JsonObject, String> {
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err("expected a JSON object, such as '{\"team\":\"edge\"}'".to_owned()),
        Err(e) => Err(format!("not valid JSON: {e}")),
    }
}

/// Parses an RFC 3339 timestamp argument.
fn parse_rfc3339(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("expected an RFC 3339 time such as 2030-01-31T00:00:00Z: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("latchkey").chain(args.iter().copied()))
    }

    #[test]
    fn the_clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_takes_every_setting_as_a_flag() {
        let cli = parse(&[
            "serve",
            "--listen",
            "0.0.0.0:9000",
            "--data-dir",
            "/var/lib/latchkey",
            "--issuer",
            "https://auth.example",
            "--token-ttl-seconds",
            "600",
            "--test-signing-alg",
            "ES256",
            "--live-signing-alg",
            "RS256",
            "--config",
            "/etc/latchkey.toml",
        ])
        .unwrap();
        let Command::Serve(s) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(s.settings.listen.unwrap().port(), 9000);
        assert_eq!(
            s.settings.data_dir.unwrap(),
            PathBuf::from("/var/lib/latchkey")
        );
        assert_eq!(s.settings.issuer.as_deref(), Some("https://auth.example"));
        assert_eq!(s.settings.token_ttl_seconds, Some(600));
        assert_eq!(s.settings.test_signing_alg.as_deref(), Some("ES256"));
        assert_eq!(s.settings.live_signing_alg.as_deref(), Some("RS256"));
        assert_eq!(s.config.unwrap(), PathBuf::from("/etc/latchkey.toml"));
    }

    #[test]
    fn serve_rejects_a_listen_address_that_is_not_one() {
        let err = parse(&["serve", "--listen", "localhost"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
    }

    #[test]
    fn admin_options_are_accepted_before_and_after_the_action() {
        for args in [
            &["tenants", "--json", "--url", "http://h:1", "list"][..],
            &["tenants", "list", "--json", "--url", "http://h:1"][..],
        ] {
            let cli = parse(args).unwrap();
            let Command::Tenants(t) = cli.command else {
                panic!("not tenants")
            };
            assert!(t.admin.json);
            assert_eq!(t.admin.url, "http://h:1");
            assert!(matches!(t.command, TenantsCommand::List(_)));
        }
    }

    #[test]
    fn serve_has_no_admin_options() {
        let err = parse(&["serve", "--admin-key", "x"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnknownArgument);
    }

    #[test]
    fn tenant_create_reads_metadata_as_a_json_object() {
        let cli = parse(&[
            "tenants",
            "create",
            "--name",
            "Acme",
            "--id",
            "acme",
            "--parent",
            "eu",
            "--no-cascade",
            "--metadata",
            r#"{"plan":"pro"}"#,
        ])
        .unwrap();
        let Command::Tenants(TenantsArgs {
            command: TenantsCommand::Create(c),
            ..
        }) = cli.command
        else {
            panic!("not tenants create")
        };
        assert_eq!(c.id.as_deref(), Some("acme"));
        assert_eq!(c.parent.as_deref(), Some("eu"));
        assert!(c.no_cascade);
        assert_eq!(c.metadata.unwrap()["plan"], "pro");
    }

    #[test]
    fn metadata_that_is_not_an_object_is_refused() {
        for bad in ["[1,2]", "{not json", "\"s\""] {
            let err = parse(&["tenants", "create", "--name", "A", "--metadata", bad]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ValueValidation, "{bad}");
        }
    }

    #[test]
    fn tenant_update_needs_a_change_and_takes_cascade_as_a_boolean() {
        let err = parse(&["tenants", "update", "acme"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        let cli = parse(&["tenants", "update", "acme", "--cascade", "false"]).unwrap();
        let Command::Tenants(TenantsArgs {
            command: TenantsCommand::Update(u),
            ..
        }) = cli.command
        else {
            panic!("not tenants update")
        };
        assert_eq!(u.cascade, Some(false));
        assert!(parse(&["tenants", "update", "acme", "--cascade", "maybe"]).is_err());
    }

    #[test]
    fn list_paging_is_bounded_and_all_excludes_cursor() {
        assert!(parse(&["tenants", "list", "--limit", "1000"]).is_ok());
        assert!(parse(&["tenants", "list", "--limit", "0"]).is_err());
        assert!(parse(&["tenants", "list", "--limit", "1001"]).is_err());
        let err = parse(&["tenants", "list", "--all", "--cursor", "c"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
    }

    #[test]
    fn user_create_and_update_flags() {
        let cli = parse(&[
            "users",
            "create",
            "--name",
            "sensor-1",
            "--kind",
            "human",
            "--phone",
            "+15550100",
            "--custom-claims",
            r#"{"site":"a"}"#,
            "--disabled",
            "--token-ttl-seconds",
            "300",
        ])
        .unwrap();
        let Command::Users(UsersArgs {
            command: UsersCommand::Create(c),
            ..
        }) = cli.command
        else {
            panic!("not users create")
        };
        assert_eq!(c.kind, Some(KindArg::Human));
        assert_eq!(c.phone.as_deref(), Some("+15550100"));
        assert!(c.disabled);
        assert_eq!(c.token_ttl_seconds, Some(300));

        assert!(parse(&["users", "update", "usr_1", "--enable", "--disable"]).is_err());
        assert!(parse(&[
            "users",
            "update",
            "usr_1",
            "--email",
            "a@b",
            "--clear-email"
        ])
        .is_err());
        assert!(parse(&["users", "update", "usr_1"]).is_err());
        assert!(parse(&["users", "update", "usr_1", "--clear-phone"]).is_ok());
        assert!(parse(&["users", "list", "--kind", "robot"]).is_err());
    }

    #[test]
    fn repeatable_roles_and_permissions_collect_in_order() {
        let cli = parse(&[
            "roles",
            "set",
            "writer",
            "--permission",
            "telemetry:write",
            "--permission",
            "telemetry:read",
            "--description",
            "Writes telemetry",
        ])
        .unwrap();
        let Command::Roles(RolesArgs {
            command: RolesCommand::Set(r),
            ..
        }) = cli.command
        else {
            panic!("not roles set")
        };
        assert_eq!(r.permissions, ["telemetry:write", "telemetry:read"]);

        let cli = parse(&["members", "set", "acme", "usr_1"]).unwrap();
        let Command::Members(MembersArgs {
            command: MembersCommand::Set(m),
            ..
        }) = cli.command
        else {
            panic!("not members set")
        };
        assert!(m.roles.is_empty(), "no --role means: end the membership");
    }

    #[test]
    fn secret_expiry_must_be_rfc3339() {
        assert!(parse(&[
            "secrets",
            "create",
            "usr_1",
            "--expires-at",
            "2030-01-31T00:00:00Z"
        ])
        .is_ok());
        assert!(parse(&["secrets", "create", "usr_1", "--expires-at", "2030-01-31"]).is_err());
        assert!(parse(&["secrets", "delete", "usr_1", "sec_1"]).is_ok());
    }

    #[test]
    fn token_collects_its_options() {
        let cli = parse(&[
            "token",
            "--client-id",
            "usr_1",
            "--client-secret",
            "s",
            "--scope",
            "a:read",
            "--scope",
            "b:write",
            "--audience",
            "https://api.example",
            "--tenant",
            "acme",
            "--decode",
        ])
        .unwrap();
        let Command::Token(t) = cli.command else {
            panic!("not token")
        };
        assert_eq!(t.client_id.as_deref(), Some("usr_1"));
        assert_eq!(t.scopes, ["a:read", "b:write"]);
        assert_eq!(t.tenant.as_deref(), Some("acme"));
        assert!(t.decode && !t.json);
    }

    #[test]
    fn api_key_create_collects_roles_and_parses_the_rate_limit() {
        let cli = parse(&[
            "api-keys",
            "create",
            "--user",
            "usr_1",
            "--tenant",
            "eu",
            "--role",
            "operator",
            "--role",
            "reader",
            "--remaining",
            "1000",
            "--rate-limit",
            "100/60",
            "--expires-at",
            "2030-01-31T00:00:00Z",
        ])
        .unwrap();
        let Command::ApiKeys(ApiKeysArgs {
            command: ApiKeysCommand::Create(c),
            ..
        }) = cli.command
        else {
            panic!("not api-keys create")
        };
        assert_eq!(c.roles, ["operator", "reader"]);
        assert_eq!(c.remaining, Some(1000));
        assert_eq!(
            c.rate_limit,
            Some(RateLimit {
                limit: 100,
                window_seconds: 60
            })
        );
        assert!(c.expires_at.is_some());
    }

    #[test]
    fn a_rate_limit_needs_two_positive_numbers() {
        for bad in ["100", "100/0", "0/60", "a/b", "100/60/1", "-1/60"] {
            let flag = format!("--rate-limit={bad}");
            let err = parse(&["api-keys", "create", "--user", "u", &flag]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ValueValidation, "{bad}");
        }
        assert!(parse(&["api-keys", "create", "--user", "u", "--remaining", "-1"]).is_err());
        assert!(
            parse(&["api-keys", "create"]).is_err(),
            "--user is required"
        );
    }

    #[test]
    fn api_key_rotate_takes_a_grace_period_and_list_takes_filters() {
        let cli = parse(&["api-keys", "rotate", "key_1", "--grace-period", "300"]).unwrap();
        let Command::ApiKeys(ApiKeysArgs {
            command: ApiKeysCommand::Rotate { id, grace_period },
            ..
        }) = cli.command
        else {
            panic!("not api-keys rotate")
        };
        assert_eq!((id.as_str(), grace_period), ("key_1", Some(300)));
        assert!(parse(&["api-keys", "rotate", "key_1", "--grace-period", "-5"]).is_err());
        assert!(parse(&["api-keys", "list", "--user", "usr_1", "--tenant", "eu", "--all"]).is_ok());
        assert!(parse(&["api-keys", "get", "key_1"]).is_ok());
        assert!(parse(&["api-keys", "revoke", "key_1", "--json"]).is_ok());
    }

    #[test]
    fn verify_takes_a_value_or_a_dash_and_defaults_to_no_mode() {
        let cli = parse(&["verify", "-", "--audience", "https://api.example"]).unwrap();
        let Command::Verify(v) = cli.command else {
            panic!("not verify")
        };
        assert_eq!(v.value, "-");
        assert_eq!(v.mode, None, "no --mode means live for tokens");
        assert_eq!(v.audience.as_deref(), Some("https://api.example"));
        assert!(parse(&["verify"]).is_err(), "the value is required");
        assert!(parse(&["verify", "t", "--mode", "staging"]).is_err());
        let cli = parse(&["verify", "t", "--mode", "test"]).unwrap();
        let Command::Verify(v) = cli.command else {
            panic!("not verify")
        };
        assert_eq!(v.mode.map(Mode::from), Some(Mode::Test));
    }

    #[test]
    fn verify_help_says_the_claimed_mode_is_not_trusted() {
        let mut cmd = Cli::command();
        let help = cmd
            .find_subcommand_mut("verify")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(help.contains("NOT trusted"), "{help}");
        assert!(help.contains("[default: live]"), "{help}");
        assert!(help.contains("0 valid, 1 invalid, 2"), "{help}");
    }

    #[test]
    fn environment_values_of_secrets_never_appear_in_help() {
        let cmd = Cli::command();
        let hides = |sub: &str, arg: &str| {
            cmd.find_subcommand(sub)
                .and_then(|s| s.get_arguments().find(|a| a.get_id() == arg))
                .map(|a| a.is_hide_env_values_set())
        };
        for group in [
            "workspace",
            "tenants",
            "users",
            "roles",
            "members",
            "secrets",
            "authorization",
            "api-keys",
            "verify",
        ] {
            assert_eq!(hides(group, "admin_key"), Some(true), "{group}");
        }
        assert_eq!(hides("verify", "caller"), Some(true));
        assert_eq!(hides("token", "client_secret"), Some(true));
        assert_eq!(hides("serve", "database_url"), Some(true));
    }
}
