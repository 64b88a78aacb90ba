//! The settings table: one row per setting, the only place a setting's environment variable, TOML
//! path, kind, range, default and help are written.
//!
//! The readers (`env.rs`, `file.rs`) look values up by row, the checks take their ranges from the row,
//! and `--help` and `docs/configuration.md` are rendered from the rows ([`crate::reference`]). Adding
//! a setting is one row here plus the line that uses it. A row with `<NAME>` in its variable is a
//! template: one variable per named policy.

/// One setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The environment variable, if the setting has one (`<NAME>`: a policy name, upper case).
    pub env: Option<&'static str>,
    /// The path in the TOML file, if the setting has one (`issuers[]`: in every issuer table,
    /// `policies.<name>`: in every named policy).
    pub toml: Option<&'static str>,
    pub kind: Kind,
    /// The default in words, as the help shows it ("" when there is none).
    pub default: &'static str,
    /// One line for people.
    pub help: &'static str,
    pub shells: Shells,
    pub group: Group,
}

/// What a value is, and the range a number must be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// Never shown in logs or summaries.
    Secret,
    Path,
    Url,
    /// `host:port`.
    Address,
    Port,
    Bool,
    /// Comma-separated in a variable, an array in the file.
    List,
    /// A whole number within bounds.
    Int(Int),
    /// A share from 0.0 to 1.0.
    Fraction,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// `Header=claim.path,…` in a variable, a table in the file.
    Map,
    /// Something only the file can hold (an array of tables).
    Table,
}

/// The bounds of a whole number and the words that name it in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Int {
    pub min: u64,
    pub max: u64,
    /// What one unit is, in "is not a whole number of …" (seconds, bytes, entries).
    pub what: &'static str,
    /// The unit after the range in "use 1 to 3600 seconds" ("" for none).
    pub unit: &'static str,
    /// What the minimum means, when it is special ("no cache"): "use 0 (no cache) to …".
    pub min_means: &'static str,
}

impl Int {
    const fn new(min: u64, max: u64, what: &'static str) -> Int {
        Int {
            min,
            max,
            what,
            unit: what,
            min_means: "",
        }
    }

    const fn min_means(self, meaning: &'static str) -> Int {
        Int {
            min_means: meaning,
            ..self
        }
    }

    const fn no_unit(self) -> Int {
        Int { unit: "", ..self }
    }

    /// The value, or the message saying the range.
    pub fn check(&self, n: u64) -> Result<u64, String> {
        if (self.min..=self.max).contains(&n) {
            return Ok(n);
        }
        let min_means = match self.min_means {
            "" => String::new(),
            m => format!(" ({m})"),
        };
        let unit = match self.unit {
            "" => String::new(),
            u => format!(" {u}"),
        };
        Err(format!(
            "{n} is out of range: use {}{min_means} to {}{unit}",
            self.min, self.max
        ))
    }
}

/// Which shells honour a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shells {
    /// The native server (`jwt-validator`).
    pub native: bool,
    /// The WebAssembly component (environment variables only).
    pub component: bool,
    /// The proxy-wasm filter (the TOML schema as its plugin configuration).
    pub filter: bool,
}

pub const ALL: Shells = Shells {
    native: true,
    component: true,
    filter: true,
};
pub const NATIVE: Shells = Shells {
    native: true,
    component: false,
    filter: false,
};
pub const NATIVE_COMPONENT: Shells = Shells {
    native: true,
    component: true,
    filter: false,
};
pub const NATIVE_FILTER: Shells = Shells {
    native: true,
    component: false,
    filter: true,
};

/// Where a setting belongs, for the help's sections and for what a configuration file replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Keys of the issuer (`[[issuers]]` in the file).
    Keys,
    /// The issuer's claim policy.
    Policy,
    /// Request limits and answers.
    Service,
    /// The native server's listener, cache and logs.
    Server,
    /// Remote key sets.
    Remote,
    /// Forward auth: identity headers and named policies.
    Gateway,
    /// Read whatever the configuration source (a file name, the listen address, the log format).
    Always,
}

impl Group {
    pub const ORDER: [Group; 7] = [
        Group::Keys,
        Group::Policy,
        Group::Service,
        Group::Server,
        Group::Remote,
        Group::Gateway,
        Group::Always,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Group::Keys => "Keys",
            Group::Policy => "Claim policy",
            Group::Service => "Requests and answers",
            Group::Server => "Native server",
            Group::Remote => "Remote key sets",
            Group::Gateway => "Forward auth (gateway mode)",
            Group::Always => "Always read from the environment",
        }
    }

    /// Variables of this group are ignored (with a warning) when a configuration file is used.
    pub fn replaced_by_file(self) -> bool {
        self != Group::Always
    }
}

const fn row(
    env: Option<&'static str>,
    toml: Option<&'static str>,
    kind: Kind,
    default: &'static str,
    help: &'static str,
    shells: Shells,
    group: Group,
) -> Setting {
    Setting {
        env,
        toml,
        kind,
        default,
        // Without the reference, the literal is discarded here at compile time and never linked.
        help: if cfg!(feature = "reference") {
            help
        } else {
            ""
        },
        shells,
        group,
    }
}

const fn secs(min: u64, max: u64) -> Kind {
    Kind::Int(Int::new(min, max, "seconds"))
}

const fn bytes(min: u64, max: u64) -> Kind {
    Kind::Int(Int::new(min, max, "bytes"))
}

/// Largest body, token or header-value limit accepted: far above any real token, low enough that a
/// typo cannot let one request claim gigabytes.
pub const MAX_SIZE_LIMIT: u64 = 64 * 1024 * 1024;
const WEEK_SECS: u64 = 7 * 24 * 3600;

// ------------------------------------------------------------------------------------------- keys

pub const SECRET: Setting = row(
    Some("JWT_SECRET"),
    Some("issuers[].secret"),
    Kind::Secret,
    "",
    "HMAC secret (its UTF-8 bytes), at least as long as the hash output (32 bytes for HS256)",
    ALL,
    Group::Keys,
);
pub const SECRET_FILE: Setting = row(
    Some("JWT_SECRET_FILE"),
    Some("issuers[].secret_file"),
    Kind::Path,
    "",
    "file holding the HMAC secret (one final newline is dropped); excludes the inline secret",
    NATIVE_COMPONENT,
    Group::Keys,
);
pub const SECRET_ENV: Setting = row(
    None,
    Some("issuers[].secret_env"),
    Kind::Text,
    "",
    "name of an environment variable holding the HMAC secret",
    NATIVE_FILTER,
    Group::Keys,
);
pub const JWKS: Setting = row(
    Some("JWT_JWKS"),
    Some("issuers[].jwks"),
    Kind::Text,
    "",
    "inline JWK set (or single JWK) as JSON",
    ALL,
    Group::Keys,
);
pub const JWKS_FILE: Setting = row(
    Some("JWT_JWKS_FILE"),
    Some("issuers[].jwks_file"),
    Kind::Path,
    "",
    "file holding a JWK set; excludes the inline set",
    NATIVE_COMPONENT,
    Group::Keys,
);
pub const PUBLIC_KEY_FILE: Setting = row(
    Some("JWT_PUBLIC_KEY_FILE"),
    None,
    Kind::Path,
    "",
    "PEM public key (SPKI \"PUBLIC KEY\" or PKCS#1 \"RSA PUBLIC KEY\"); the component needs --features pem",
    NATIVE_COMPONENT,
    Group::Keys,
);
pub const PUBLIC_KEYS: Setting = row(
    None,
    Some("issuers[].public_keys"),
    Kind::Table,
    "",
    "PEM public keys: [{ file = \"old.pem\", kid = \"2023\", alg = \"RS256\" }] (kid, alg optional)",
    NATIVE,
    Group::Keys,
);
pub const ALLOW_WEAK_SECRET: Setting = row(
    Some("JWT_ALLOW_WEAK_SECRET"),
    Some("server.allow_weak_secrets"),
    Kind::Bool,
    "false",
    "accept an HMAC secret shorter than the hash output; insecure, warned at every start",
    ALL,
    Group::Keys,
);

// ----------------------------------------------------------------------------------------- policy

pub const ISSUER: Setting = row(
    Some("JWT_ISSUER"),
    Some("issuers[].issuer"),
    Kind::Text,
    "any",
    "required \"iss\" (exact match), or a multi-tenant template with {tenantid} (https://login.microsoftonline.com/{tenantid}/v2.0); in the file, an issuer without it is the default one",
    ALL,
    Group::Policy,
);
pub const ALLOWED_TENANTS: Setting = row(
    Some("JWT_ALLOWED_TENANTS"),
    Some("issuers[].allowed_tenants"),
    Kind::List,
    "",
    "with an issuer template: the tenant ids accepted (required); iss must be the template filled with the token's own \"tid\"",
    ALL,
    Group::Policy,
);
pub const AUDIENCE: Setting = row(
    Some("JWT_AUDIENCE"),
    Some("issuers[].audiences"),
    Kind::List,
    "any",
    "accepted audiences; a token must carry one of them (\"aud\" is then required)",
    ALL,
    Group::Policy,
);
pub const ALGORITHMS: Setting = row(
    Some("JWT_ALGORITHMS"),
    Some("issuers[].algorithms"),
    Kind::List,
    "what the keys are bound to",
    "allow-list, case-sensitive: HS256 HS384 HS512 RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA (\"none\" never)",
    ALL,
    Group::Policy,
);
pub const LEEWAY: Setting = row(
    Some("JWT_LEEWAY"),
    Some("issuers[].leeway"),
    secs(0, u64::MAX),
    "60",
    "clock skew tolerance in seconds, for exp, nbf and iat",
    ALL,
    Group::Policy,
);
pub const MAX_AGE: Setting = row(
    Some("JWT_MAX_AGE"),
    Some("issuers[].max_age"),
    secs(0, u64::MAX),
    "none",
    "maximum token age in seconds, from iat (iat is then required)",
    ALL,
    Group::Policy,
);
pub const REQUIRED_CLAIMS: Setting = row(
    Some("JWT_REQUIRED_CLAIMS"),
    Some("issuers[].required_claims"),
    Kind::List,
    "none",
    "claims that must be present",
    ALL,
    Group::Policy,
);
pub const REQUIRED_SCOPES: Setting = row(
    Some("JWT_REQUIRED_SCOPES"),
    Some("issuers[].required_scopes"),
    Kind::List,
    "none",
    "scopes every token must grant (\"scope\" or \"scp\"; space- or comma-separated), else 403",
    ALL,
    Group::Policy,
);
pub const TYPES: Setting = row(
    Some("JWT_TYPES"),
    Some("issuers[].types"),
    Kind::List,
    "JWT,at+jwt",
    "accepted \"typ\" header values; without JWT, \"typ\" is required (at+jwt alone is RFC 9068's strict check)",
    ALL,
    Group::Policy,
);
pub const REQUIRE_EXP: Setting = row(
    Some("JWT_REQUIRE_EXP"),
    Some("issuers[].require_exp"),
    Kind::Bool,
    "true",
    "require \"exp\"",
    ALL,
    Group::Policy,
);
pub const SUBJECT: Setting = row(
    None,
    Some("issuers[].subject"),
    Kind::Text,
    "any",
    "required \"sub\" (exact match)",
    NATIVE_FILTER,
    Group::Policy,
);

// ---------------------------------------------------------------------------------------- service

pub const MAX_BODY_BYTES: Setting = row(
    Some("JWT_MAX_BODY_BYTES"),
    Some("server.max_body_bytes"),
    bytes(1, MAX_SIZE_LIMIT),
    "16384",
    "largest request body; a larger one gets 413",
    NATIVE_COMPONENT,
    Group::Service,
);
pub const MAX_TOKEN_BYTES: Setting = row(
    Some("JWT_MAX_TOKEN_BYTES"),
    Some("server.max_token_bytes"),
    bytes(1, MAX_SIZE_LIMIT),
    "8192",
    "largest token",
    ALL,
    Group::Service,
);
pub const MAX_JSON_DEPTH: Setting = row(
    Some("JWT_MAX_JSON_DEPTH"),
    Some("server.max_json_depth"),
    Kind::Int(Int::new(1, 128, "levels").no_unit()),
    "16",
    "deepest JSON nesting of a token's header or claims",
    ALL,
    Group::Service,
);
pub const EXPOSE_ERRORS: Setting = row(
    Some("JWT_EXPOSE_ERRORS"),
    Some("server.expose_error_descriptions"),
    Kind::Bool,
    "true",
    "include the human error_description in answers (codes stay either way)",
    ALL,
    Group::Service,
);
pub const REALM: Setting = row(
    Some("JWT_REALM"),
    Some("server.realm"),
    Kind::Text,
    "jwt-validator",
    "realm of the WWW-Authenticate challenge (printable ASCII without '\"' or '\\')",
    ALL,
    Group::Service,
);

// ----------------------------------------------------------------------------------------- server

pub const LISTEN: Setting = row(
    Some("JWT_LISTEN"),
    Some("server.listen"),
    Kind::Address,
    "0.0.0.0:3000",
    "host:port to listen on; wins over PORT (the file's server.listen wins over both, --listen over all)",
    NATIVE,
    Group::Always,
);
pub const PORT: Setting = row(
    Some("PORT"),
    None,
    Kind::Port,
    "3000",
    "port to listen on, on all interfaces, as the replaced service",
    NATIVE,
    Group::Always,
);
pub const REQUEST_TIMEOUT: Setting = row(
    Some("JWT_REQUEST_TIMEOUT"),
    Some("server.request_timeout_secs"),
    secs(1, 3600),
    "10",
    "seconds a client may take to send one request, headers and body",
    NATIVE,
    Group::Server,
);
pub const FIRST_BYTE_TIMEOUT: Setting = row(
    Some("JWT_FIRST_BYTE_TIMEOUT"),
    Some("server.first_byte_timeout_secs"),
    secs(1, 3600),
    "5, at most the request timeout",
    "seconds a connection may stay open with no request in progress: before a first byte, or kept alive between requests",
    NATIVE,
    Group::Server,
);
pub const MAX_CONNECTIONS: Setting = row(
    Some("JWT_MAX_CONNECTIONS"),
    Some("server.max_connections"),
    Kind::Int(Int::new(1, 1_000_000, "connections").no_unit()),
    "from the file-descriptor limit",
    "connections open at once; at the limit, the one longest without a request in progress is closed to make room",
    NATIVE,
    Group::Server,
);
pub const TOKEN_CACHE_SIZE: Setting = row(
    Some("JWT_TOKEN_CACHE_SIZE"),
    Some("server.token_cache_size"),
    Kind::Int(Int::new(0, 10_000_000, "entries").min_means("no cache")),
    "10000",
    "verified tokens remembered (keyed by the whole token, never used at or past its exp; claim rules applied again on every hit)",
    NATIVE_FILTER,
    Group::Server,
);
pub const LOG_DECISIONS: Setting = row(
    Some("JWT_LOG_DECISIONS"),
    Some("server.log_decisions"),
    Kind::Choice(&["all", "refusals", "none"]),
    "refusals",
    "which decisions get a log line (every decision is counted in /metrics whatever this says)",
    NATIVE,
    Group::Server,
);
pub const LOG_SAMPLE: Setting = row(
    Some("JWT_LOG_SAMPLE"),
    Some("server.log_sample"),
    Kind::Fraction,
    "1.0",
    "the share of those decisions logged, every n-th one",
    NATIVE,
    Group::Server,
);
pub const LOG_REFUSALS_PER_SEC: Setting = row(
    Some("JWT_LOG_REFUSALS_PER_SEC"),
    Some("server.log_refusals_per_sec"),
    Kind::Int(
        Int::new(0, crate::MAX_LOG_REFUSALS_PER_SEC as u64, "lines a second")
            .min_means("no bound")
            .no_unit(),
    ),
    "10",
    "refusal lines a second per reason code, as many in a burst; the rest are counted in one summary line a second",
    NATIVE,
    Group::Server,
);

// ----------------------------------------------------------------------------------------- remote

pub const JWKS_URI: Setting = row(
    Some("JWT_JWKS_URI"),
    Some("issuers[].jwks_uri"),
    Kind::Url,
    "",
    "fetch the issuer's keys from this JWK Set URL (https); excludes every other key source",
    ALL,
    Group::Remote,
);
pub const JWKS_SEED_FILE: Setting = row(
    Some("JWT_JWKS_SEED_FILE"),
    Some("issuers[].jwks_seed_file"),
    Kind::Path,
    "",
    "a JWK set file served beside the remote source until the first successful fetch (ready, no 503 while the provider is down); the first fetched set replaces it, never merged. Make it with: curl $JWKS_URI > seed.json",
    NATIVE_COMPONENT,
    Group::Remote,
);
pub const JWKS_SEED: Setting = row(
    None,
    Some("issuers[].jwks_seed"),
    Kind::Text,
    "",
    "the seed JWK set inline, as JSON: for the proxy-wasm filter, which reads no files; excludes jwks_seed_file",
    NATIVE_FILTER,
    Group::Remote,
);
pub const OIDC_DISCOVERY: Setting = row(
    Some("JWT_OIDC_DISCOVERY"),
    Some("issuers[].discovery"),
    Kind::Bool,
    "false",
    "read {issuer}/.well-known/openid-configuration, whose \"issuer\" must equal the configured one, and fetch its jwks_uri",
    ALL,
    Group::Remote,
);
pub const ALLOW_HTTP_LOOPBACK: Setting = row(
    Some("JWT_ALLOW_HTTP_LOOPBACK"),
    Some("fetch.allow_http_loopback"),
    Kind::Bool,
    "false",
    "accept plain http:// key-set and discovery URLs, for loopback hosts only (127.0.0.0/8, ::1, localhost)",
    ALL,
    Group::Remote,
);
pub const FETCH_TIMEOUT: Setting = row(
    Some("JWT_FETCH_TIMEOUT"),
    Some("fetch.timeout_secs"),
    secs(1, 120),
    "5",
    "seconds for one fetch: connect, TLS, request and whole response",
    ALL,
    Group::Remote,
);
pub const FETCH_MAX_BYTES: Setting = row(
    Some("JWT_FETCH_MAX_BYTES"),
    Some("fetch.max_bytes"),
    bytes(1024, 16 * 1024 * 1024),
    "262144",
    "largest key-set or discovery document; reading stops past it",
    ALL,
    Group::Remote,
);
pub const JWKS_MIN_TTL: Setting = row(
    Some("JWT_JWKS_MIN_TTL"),
    Some("fetch.min_ttl_secs"),
    secs(1, WEEK_SECS),
    "60",
    "Cache-Control max-age is clamped to [min, max] seconds (no-cache and no-store count as 0, so min)",
    ALL,
    Group::Remote,
);
pub const JWKS_MAX_TTL: Setting = row(
    Some("JWT_JWKS_MAX_TTL"),
    Some("fetch.max_ttl_secs"),
    secs(1, WEEK_SECS),
    "86400",
    "upper bound of max-age, in seconds",
    ALL,
    Group::Remote,
);
pub const JWKS_DEFAULT_TTL: Setting = row(
    Some("JWT_JWKS_DEFAULT_TTL"),
    Some("fetch.default_ttl_secs"),
    secs(1, WEEK_SECS),
    "600",
    "seconds a key set served without max-age is used before a background refresh (within [min, max])",
    ALL,
    Group::Remote,
);
pub const JWKS_REFETCH_COOLDOWN: Setting = row(
    Some("JWT_JWKS_REFETCH_COOLDOWN"),
    Some("fetch.refetch_cooldown_secs"),
    secs(1, 3600),
    "30",
    "seconds between two refetches caused by tokens naming an unknown kid (one fetch, shared by all requests)",
    ALL,
    Group::Remote,
);
pub const JWKS_REFETCH_WAIT_MS: Setting = row(
    Some("JWT_JWKS_REFETCH_WAIT_MS"),
    Some("fetch.refetch_wait_ms"),
    Kind::Int(
        Int::new(0, jwtv_keyset::MAX_REFETCH_WAIT_MS, "milliseconds").min_means("never wait"),
    ),
    "1000",
    "longest a request with an unknown kid waits on that refetch; past it the answer comes from the set in hand",
    NATIVE_COMPONENT,
    Group::Remote,
);
pub const FETCH_CA_FILE: Setting = row(
    Some("JWT_FETCH_CA_FILE"),
    Some("fetch.ca_file"),
    Kind::Path,
    "",
    "PEM CA certificates trusted for key-set fetches beside the compiled-in Mozilla roots; a bad file stops the start",
    NATIVE,
    Group::Remote,
);
pub const TLS_CERT_FILE: Setting = row(
    Some("JWT_TLS_CERT_FILE"),
    None,
    Kind::Path,
    "",
    "PEM certificate chain (leaf first): the listener speaks TLS 1.2/1.3 only, ALPN h2 and http/1.1; rotated files are served to new connections after a reload",
    NATIVE,
    Group::Always,
);
pub const TLS_KEY_FILE: Setting = row(
    Some("JWT_TLS_KEY_FILE"),
    None,
    Kind::Path,
    "",
    "PEM private key of that certificate",
    NATIVE,
    Group::Always,
);
pub const TLS_CLIENT_CA_FILE: Setting = row(
    Some("JWT_TLS_CLIENT_CA_FILE"),
    None,
    Kind::Path,
    "",
    "PEM CA certificates: every client must present a certificate one of them signed (mTLS), else the handshake is refused",
    NATIVE,
    Group::Always,
);
pub const CLIENT_CERT_SOURCE: Setting = row(
    Some("JWT_CLIENT_CERT_SOURCE"),
    Some("server.client_cert_source"),
    Kind::Text,
    "none",
    "where a request's client certificate is read, for tokens bound to one (cnf x5t#S256, RFC 8705): none (every bound token is refused), tls (our mTLS listener; in the filter, Envoy's), xfcc (Envoy), header:NAME:pem (nginx), header:NAME:der (Traefik, Caddy); a header only from a gateway that overwrites it; in the component, its dpop build only (docs/sender-constrained.md)",
    ALL,
    Group::Always,
);

// ---------------------------------------------------------------------------------------- gateway

pub const CLAIM_HEADERS: Setting = row(
    Some("JWT_CLAIM_HEADERS"),
    Some("gateway.claim_headers"),
    Kind::Map,
    "none",
    "extra identity headers on allow: Header=claim.path,… (file: { \"X-Auth-Email\" = \"email\" }); arrays joined with \",\"",
    ALL,
    Group::Gateway,
);
pub const MAX_HEADER_VALUE_BYTES: Setting = row(
    None,
    Some("gateway.max_header_value_bytes"),
    bytes(1, MAX_SIZE_LIMIT),
    "1024",
    "longest identity-header value; longer values are cut",
    NATIVE_FILTER,
    Group::Gateway,
);
pub const POLICIES: Setting = row(
    Some("JWT_POLICIES"),
    Some("policies.<name>"),
    Kind::List,
    "none",
    "named policies, served at /policy/NAME/auth; NAME holds letters, digits, '-' and '_'",
    ALL,
    Group::Gateway,
);
pub const POLICY_ISSUERS: Setting = row(
    Some("JWT_POLICY_<NAME>_ISSUERS"),
    Some("policies.<name>.issuers"),
    Kind::List,
    "any",
    "accepted \"iss\" values of the policy (any of); <NAME> is the name in upper case, '-' as '_'",
    ALL,
    Group::Gateway,
);
pub const POLICY_AUDIENCES: Setting = row(
    Some("JWT_POLICY_<NAME>_AUDIENCES"),
    Some("policies.<name>.audiences"),
    Kind::List,
    "any",
    "accepted \"aud\" values of the policy (any of)",
    ALL,
    Group::Gateway,
);
pub const POLICY_SCOPES: Setting = row(
    Some("JWT_POLICY_<NAME>_SCOPES"),
    Some("policies.<name>.scopes"),
    Kind::List,
    "none",
    "scopes the policy requires, else 403 insufficient_scope",
    ALL,
    Group::Gateway,
);
pub const TOKEN_SOURCES: Setting = row(
    Some("JWT_TOKEN_SOURCES"),
    Some("gateway.token_sources"),
    Kind::List,
    "bearer",
    "where the token is looked for, in order: bearer, cookie:NAME, header:NAME, query:NAME (query leaks into logs: only if listed); two sources with different tokens are refused (docs/access.md)",
    ALL,
    Group::Gateway,
);
pub const ANONYMOUS: Setting = row(
    Some("JWT_ANONYMOUS"),
    Some("gateway.anonymous"),
    Kind::Choice(&["allow", "deny"]),
    "deny",
    "allow: a request with no token passes /auth with empty identity headers (a bad token is still refused)",
    ALL,
    Group::Gateway,
);
pub const DPOP: Setting = row(
    Some("JWT_DPOP"),
    Some("gateway.dpop"),
    Kind::Choice(&["required", "allowed", "off"]),
    "allowed",
    "DPoP (RFC 9449): allowed takes Authorization: DPoP with its proof and bearer tokens without cnf; required refuses unbound tokens; off refuses DPoP-bound tokens (docs/dpop.md)",
    ALL,
    Group::Gateway,
);
#[cfg(feature = "bindings")]
pub const DPOP_WINDOW: Setting = row(
    Some("JWT_DPOP_WINDOW"),
    Some("server.dpop_window_secs"),
    secs(1, 3600),
    "60",
    "how old a DPoP proof's iat may be (the issuer's leeway is added for clock skew); also how long its jti is remembered",
    ALL,
    Group::Gateway,
);
#[cfg(feature = "bindings")]
pub const DPOP_ALGORITHMS: Setting = row(
    Some("JWT_DPOP_ALGORITHMS"),
    Some("server.dpop_algorithms"),
    Kind::List,
    "every asymmetric algorithm the build verifies",
    "algorithms a DPoP proof may be signed with (asymmetric only), also the algs of the DPoP challenge: ES256,EdDSA narrows to what your clients use",
    ALL,
    Group::Gateway,
);
#[cfg(feature = "bindings")]
pub const DPOP_REPLAY_MAX_ENTRIES: Setting = row(
    Some("JWT_DPOP_REPLAY_MAX_ENTRIES"),
    Some("server.dpop_replay_max_entries"),
    Kind::Int(Int::new(1, 10_000_000, "entries")),
    "100000",
    "DPoP proofs remembered in memory (per process, per component instance, per filter VM); when full of unexpired ones, new proofs get 503 replay_store_unavailable",
    ALL,
    Group::Gateway,
);
// The shared DPoP replay store (server/src/replay_redis.rs, docs/dpop.md).
#[cfg(feature = "replay-store")]
pub const DPOP_REPLAY_STORE: Setting = row(
    Some("JWT_DPOP_REPLAY_STORE"),
    Some("server.dpop_replay_store"),
    Kind::Url,
    "memory",
    "where DPoP proof jti's are remembered: memory (this process) or redis://[user@]host:port/db, shared by every replica",
    NATIVE,
    Group::Gateway,
);
#[cfg(feature = "replay-store")]
pub const DPOP_REPLAY_ON_STORE_ERROR: Setting = row(
    Some("JWT_DPOP_REPLAY_ON_STORE_ERROR"),
    Some("server.dpop_replay_on_store_error"),
    Kind::Choice(&["refuse", "allow"]),
    "refuse",
    "a DPoP proof the store cannot check (down, timed out) is refused, or allowed: then a replayed proof passes meanwhile",
    NATIVE,
    Group::Gateway,
);
#[cfg(feature = "replay-store")]
pub const DPOP_REPLAY_STORE_PASSWORD_FILE: Setting = row(
    Some("JWT_DPOP_REPLAY_STORE_PASSWORD_FILE"),
    Some("server.dpop_replay_store_password_file"),
    Kind::Path,
    "",
    "file holding the Redis password (AUTH; one final newline is dropped), never part of the URL",
    NATIVE,
    Group::Gateway,
);
#[cfg(feature = "replay-store")]
pub const DPOP_REPLAY_STORE_CONNECT_TIMEOUT_MS: Setting = row(
    Some("JWT_DPOP_REPLAY_STORE_CONNECT_TIMEOUT_MS"),
    Some("server.dpop_replay_store_connect_timeout_ms"),
    Kind::Int(Int::new(1, 60_000, "milliseconds")),
    "1000",
    "longest a new connection to the Redis replay store may take (TCP, AUTH, SELECT)",
    NATIVE,
    Group::Gateway,
);
#[cfg(feature = "replay-store")]
pub const DPOP_REPLAY_STORE_TIMEOUT_MS: Setting = row(
    Some("JWT_DPOP_REPLAY_STORE_TIMEOUT_MS"),
    Some("server.dpop_replay_store_timeout_ms"),
    Kind::Int(Int::new(1, 60_000, "milliseconds")),
    "250",
    "longest one SET NX PX to the Redis replay store may take before the proof counts as unchecked",
    NATIVE,
    Group::Gateway,
);
pub const RULE: Setting = row(
    Some("JWT_RULE"),
    Some("gateway.rule"),
    Kind::Text,
    "none",
    "a CEL rule over claims and request (method, path, host, headers) a verified token must pass, else 403 rule_failed; checked at start (docs/access.md)",
    ALL,
    Group::Gateway,
);
pub const POLICY_TOKEN_SOURCES: Setting = row(
    Some("JWT_POLICY_<NAME>_TOKEN_SOURCES"),
    Some("policies.<name>.token_sources"),
    Kind::List,
    "bearer",
    "the policy's token sources, as JWT_TOKEN_SOURCES",
    ALL,
    Group::Gateway,
);
pub const POLICY_ANONYMOUS: Setting = row(
    Some("JWT_POLICY_<NAME>_ANONYMOUS"),
    Some("policies.<name>.anonymous"),
    Kind::Choice(&["allow", "deny"]),
    "deny",
    "allow: the policy lets requests without a token through, as JWT_ANONYMOUS",
    ALL,
    Group::Gateway,
);
pub const POLICY_DPOP: Setting = row(
    Some("JWT_POLICY_<NAME>_DPOP"),
    Some("policies.<name>.dpop"),
    Kind::Choice(&["required", "allowed", "off"]),
    "allowed",
    "the policy's DPoP mode, as JWT_DPOP",
    ALL,
    Group::Gateway,
);
pub const POLICY_RULE: Setting = row(
    Some("JWT_POLICY_<NAME>_RULE"),
    Some("policies.<name>.rule"),
    Kind::Text,
    "none",
    "the policy's CEL rule, as JWT_RULE",
    ALL,
    Group::Gateway,
);
pub const POLICY_CLAIMS: Setting = row(
    Some("JWT_POLICY_<NAME>_CLAIMS"),
    Some("policies.<name>.claims"),
    Kind::Map,
    "none",
    "claim=value,… the policy requires (repeat a claim for any of; a bare claim must only be present); else 403",
    ALL,
    Group::Gateway,
);

// ----------------------------------------------------------------------------------------- always

pub const CONFIG: Setting = row(
    Some("JWT_CONFIG"),
    None,
    Kind::Path,
    "",
    "TOML configuration file (same as --config); its settings replace the variables above",
    NATIVE,
    Group::Always,
);
pub const LOG_FORMAT: Setting = row(
    Some("JWT_LOG_FORMAT"),
    None,
    Kind::Choice(&["text", "json"]),
    "text",
    "log format on stderr (same as --log-format)",
    NATIVE,
    Group::Always,
);
pub const RUST_LOG: Setting = row(
    Some("RUST_LOG"),
    None,
    Kind::Text,
    "info",
    "log filter, e.g. RUST_LOG=debug",
    NATIVE,
    Group::Always,
);
pub const HTTPS_PROXY: Setting = row(
    Some("HTTPS_PROXY"),
    None,
    Kind::Url,
    "",
    "https fetches go through this http:// proxy in a CONNECT tunnel, as with curl (else ALL_PROXY; lower case too)",
    NATIVE,
    Group::Always,
);
pub const NO_PROXY: Setting = row(
    Some("NO_PROXY"),
    None,
    Kind::List,
    "",
    "hosts, domains (with subdomains), IPs or CIDRs fetched directly, or * for all; plain http is never proxied",
    NATIVE,
    Group::Always,
);

/// Every row, in the order the help shows them within a group.
pub const SETTINGS: &[Setting] = &[
    SECRET,
    SECRET_FILE,
    SECRET_ENV,
    JWKS,
    JWKS_FILE,
    PUBLIC_KEY_FILE,
    PUBLIC_KEYS,
    ALLOW_WEAK_SECRET,
    ISSUER,
    ALLOWED_TENANTS,
    AUDIENCE,
    ALGORITHMS,
    LEEWAY,
    MAX_AGE,
    REQUIRED_CLAIMS,
    REQUIRED_SCOPES,
    TYPES,
    REQUIRE_EXP,
    SUBJECT,
    MAX_BODY_BYTES,
    MAX_TOKEN_BYTES,
    MAX_JSON_DEPTH,
    EXPOSE_ERRORS,
    REALM,
    REQUEST_TIMEOUT,
    FIRST_BYTE_TIMEOUT,
    MAX_CONNECTIONS,
    TOKEN_CACHE_SIZE,
    LOG_DECISIONS,
    LOG_SAMPLE,
    LOG_REFUSALS_PER_SEC,
    JWKS_URI,
    JWKS_SEED_FILE,
    JWKS_SEED,
    OIDC_DISCOVERY,
    ALLOW_HTTP_LOOPBACK,
    FETCH_TIMEOUT,
    FETCH_MAX_BYTES,
    JWKS_MIN_TTL,
    JWKS_MAX_TTL,
    JWKS_DEFAULT_TTL,
    JWKS_REFETCH_COOLDOWN,
    JWKS_REFETCH_WAIT_MS,
    FETCH_CA_FILE,
    CLAIM_HEADERS,
    MAX_HEADER_VALUE_BYTES,
    POLICIES,
    POLICY_ISSUERS,
    POLICY_AUDIENCES,
    POLICY_SCOPES,
    POLICY_CLAIMS,
    TOKEN_SOURCES,
    ANONYMOUS,
    DPOP,
    #[cfg(feature = "bindings")]
    DPOP_WINDOW,
    #[cfg(feature = "bindings")]
    DPOP_ALGORITHMS,
    #[cfg(feature = "bindings")]
    DPOP_REPLAY_MAX_ENTRIES,
    #[cfg(feature = "replay-store")]
    DPOP_REPLAY_STORE,
    #[cfg(feature = "replay-store")]
    DPOP_REPLAY_ON_STORE_ERROR,
    #[cfg(feature = "replay-store")]
    DPOP_REPLAY_STORE_PASSWORD_FILE,
    #[cfg(feature = "replay-store")]
    DPOP_REPLAY_STORE_CONNECT_TIMEOUT_MS,
    #[cfg(feature = "replay-store")]
    DPOP_REPLAY_STORE_TIMEOUT_MS,
    RULE,
    POLICY_TOKEN_SOURCES,
    POLICY_ANONYMOUS,
    POLICY_DPOP,
    POLICY_RULE,
    CONFIG,
    LISTEN,
    PORT,
    TLS_CERT_FILE,
    TLS_KEY_FILE,
    TLS_CLIENT_CA_FILE,
    #[cfg(feature = "bindings")]
    CLIENT_CERT_SOURCE,
    LOG_FORMAT,
    RUST_LOG,
    HTTPS_PROXY,
    NO_PROXY,
];

impl Setting {
    /// The variable's name. Only for rows that have one: the readers never ask a row without one.
    pub const fn var(&self) -> &'static str {
        match self.env {
            Some(name) => name,
            None => "",
        }
    }

    /// The TOML key within its table (`listen` for `server.listen`).
    pub fn toml_key(&self) -> Option<&'static str> {
        self.toml
            .map(|path| path.rsplit('.').next().unwrap_or(path))
    }

    /// The TOML table the key is in (`server`, `fetch`, `issuers[]`, `policies.<name>`).
    pub fn toml_table(&self) -> Option<&'static str> {
        self.toml
            .and_then(|path| path.rsplit_once('.').map(|(t, _)| t))
    }

    /// A policy's variable for this templated row: `JWT_POLICY_ADMIN_SCOPES` for `admin`.
    pub fn for_policy(&self, name: &str) -> String {
        let upper = name.to_ascii_uppercase().replace('-', "_");
        self.var().replace("<NAME>", &upper)
    }

    fn env_matches(&self, name: &str) -> bool {
        match self.env {
            None => false,
            Some(pattern) => match pattern.split_once("<NAME>") {
                None => pattern == name,
                Some((before, after)) => {
                    name.len() > before.len() + after.len()
                        && name.starts_with(before)
                        && name.ends_with(after)
                }
            },
        }
    }
}

/// The row of a variable (templated rows match any policy name).
pub fn by_env(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.env_matches(name))
}

/// The variables a configuration file replaces, in table order (those a file user should not leave set).
pub fn replaced_by_file() -> impl Iterator<Item = &'static Setting> {
    SETTINGS
        .iter()
        .filter(|s| s.env.is_some() && s.group.replaced_by_file())
}

/// One warning line per `JWT_*` variable no row knows, naming the nearest known one: a typo must not
/// start the service as if the setting were unset.
pub fn unknown_variables<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut unknown: Vec<&str> = names
        .into_iter()
        .filter(|n| n.starts_with("JWT_") && by_env(n).is_none())
        .collect();
    unknown.sort_unstable();
    unknown.dedup();
    unknown
        .into_iter()
        .map(|name| match nearest(name) {
            Some(known) => {
                format!("{name} is not a setting and is ignored: did you mean {known}?")
            }
            None => format!("{name} is not a setting and is ignored"),
        })
        .collect()
}

/// The known variable closest to `name` by edit distance, if it is close enough to be a typo.
fn nearest(name: &str) -> Option<&'static str> {
    SETTINGS
        .iter()
        .filter_map(|s| s.env)
        .filter(|v| v.starts_with("JWT_"))
        .map(|v| (edit_distance(name, v), v))
        .min_by_key(|(d, _)| *d)
        .filter(|(d, _)| *d <= name.len() / 3)
        .map(|(_, v)| v)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitution.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
