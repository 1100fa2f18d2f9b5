package config

// Sample is the commented configuration `chappe serve` writes into a new
// data directory. It states every default; keep it in step with Default.
const Sample = `# Chappe configuration. Every key has a default: delete what you do not change.
# Check a file with: chappe config check --config chappe.yaml

# The server name: the part after ":" in user IDs (@alice:example.gouv.fr).
# It cannot be changed once users exist.
server_name: localhost

# Where the SQLite database, the embedded NATS store and the signing key live
# when their paths are relative.
data_dir: ./chappe-data

# The ed25519 key that signs this server's events (generated at first start).
signing_key_path: signing.key

# The URL clients reach this server at, advertised in /.well-known/matrix/client.
# Empty: http://<client_api.listen>.
public_base_url: ""

# Components this process runs; empty runs them all. Several processes that
# share database.url and nats.urls form one homeserver, e.g.
#   components: [roomserver, userapi]      in one process and
#   components: [clientapi, syncapi]       in another.
components: []

client_api:
  listen: 127.0.0.1:8008
  # Requests with a larger body are refused with M_TOO_LARGE.
  max_body_bytes: 10485760
  # Reverse proxies (CIDRs) whose X-Forwarded-For header names the client,
  # for per-IP rate limits. Behind a proxy, list it here, or every client
  # shares the proxy's address.
  trusted_proxies: []
  # net/http/pprof on its own address (e.g. 127.0.0.1:6060), for profiling;
  # empty serves nothing. Never expose it publicly.
  pprof_listen: ""

database:
  # Empty: SQLite at <data_dir>/chappe.db. Production: postgres://user:pass@host/db
  url: ""
  max_open_conns: 16

nats:
  # Empty: NATS runs inside this process, with JetStream in <data_dir>/nats.
  # Production: the URLs of a NATS JetStream cluster.
  urls: []
  # Open a TCP listener on the embedded NATS so other processes can join it.
  listen: ""
  # Namespaces subjects and streams, so several homeservers can share a cluster.
  subject_prefix: ""
  # Stream replicas on an external cluster.
  replicas: 1
  # fsync every JetStream message (embedded NATS only); slower, survives power loss.
  sync_always: false

registration:
  # Open registration (m.login.dummy) for anyone who can reach the server.
  enabled: false
  # Enables /_synapse/admin/v1/register for operators' tools. Keep it secret.
  shared_secret: ""
  # Open registration asks for a registration token created by an admin
  # (/_synapse/admin/v1/registration_tokens) instead of m.login.dummy.
  require_token: false
  # Clients that ask for a refresh token get access tokens that expire after
  # this long; refresh tokens expire after refresh_token_lifetime (0s: never).
  refreshable_access_token_lifetime: 5m
  refresh_token_lifetime: 0s

rooms:
  # Room version of new rooms (1 to 12); the spec recommends 12.
  default_version: "12"

presence:
  # Share online/offline status with other users (Tchap turns it off).
  enabled: true

e2ee:
  # Advertised to clients in /.well-known/matrix/client (io.element.e2ee):
  # ask users to set up secure key backup, and encrypt new rooms by default.
  secure_backup_required: false
  default: true

rate_limits:
  # Per user (per IP address before login), one token bucket per action:
  # per_second refills it, burst is its size. Over the limit: 429
  # M_LIMIT_EXCEEDED with retry_after_ms. Actions left out are not limited;
  # server admins never are.
  enabled: true
  actions:
    login:        {per_second: 0.5, burst: 5}
    register:     {per_second: 0.2, burst: 3}
    message:      {per_second: 10, burst: 50}
    create_room:  {per_second: 0.5, burst: 10}
    invite:       {per_second: 1, burst: 20}
    join:         {per_second: 1, burst: 20}
    profile:      {per_second: 1, burst: 10}
    media_upload: {per_second: 2, burst: 20}

media:
  # Uploaded files, stored once per distinct content (relative to data_dir).
  storage_path: media
  # Largest upload (50 MiB); larger ones get 413 M_TOO_LARGE.
  max_upload_bytes: 52428800
  # Total bytes one user may store; 0: no quota. Over it: 403 M_FORBIDDEN.
  user_quota_bytes: 0
  # mxc URIs a user may have created (POST /_matrix/media/v1/create) and not
  # yet filled; more: 429 M_LIMIT_EXCEEDED. Unfilled ones expire after
  # unused_expiry and are then deleted by a periodic sweep.
  max_pending_uploads: 10
  unused_expiry: 24h
  # Serve the deprecated unauthenticated /_matrix/media/v3/download and
  # /thumbnail endpoints. Off: they answer 404 M_NOT_FOUND and clients use
  # the authenticated /_matrix/client/v1/media endpoints.
  legacy_unauthenticated: false
  # With legacy_unauthenticated off: media uploaded (or, from other servers,
  # first fetched) before this time stays reachable there without a token,
  # newer media answers 404 (the freeze of a server that used to serve them
  # all). RFC 3339 or a date (midnight UTC), e.g. "2025-06-01"; "" for none.
  legacy_unauthenticated_until: ""
  # Images with more pixels are not thumbnailed (decompression bombs).
  max_thumbnail_pixels: 32000000
  # Thumbnails generated on demand and kept; a request is served the
  # smallest size of its method at least as large as asked.
  thumbnail_sizes:
    - {width: 32, height: 32, method: crop}
    - {width: 96, height: 96, method: crop}
    - {width: 320, height: 240, method: scale}
    - {width: 640, height: 480, method: scale}
    - {width: 800, height: 600, method: scale}
  url_preview:
    # Previews make this server fetch URLs users post: off by default.
    enabled: false
    # Loopback, private, link-local, multicast... addresses are refused
    # unless inside one of these ranges (e.g. [10.20.0.0/16]).
    allowed_cidrs: []
    # Largest page or image fetched, and how long a fetch may take.
    max_bytes: 10485760
    timeout: 10s
    # How long a preview is reused before the URL is fetched again.
    cache_ttl: 1h
  # An S3-compatible bucket for the files instead of storage_path (which
  # then only spools uploads before they are sent). Empty endpoint: local.
  s3:
    # e.g. https://s3.eu-west-3.amazonaws.com, or http://minio:9000 on a
    # trusted network.
    endpoint: ""
    bucket: ""
    region: ""
    access_key: ""
    secret_key: ""
    # Address the bucket as endpoint/bucket (MinIO, most self-hosted stores).
    path_style: false
    # Put before every object name, e.g. "chappe/".
    prefix: ""

# The server-server API: other homeservers (other ministries) joining rooms
# here and users here joining theirs. Off by default. See docs/federation.md.
federation:
  enabled: false
  # The federation listener; other servers reach it as server_name, port 8448
  # unless /.well-known/matrix/server or an SRV record says otherwise.
  listen: ":8448"
  # PEM certificate and key (relative to data_dir) for the listener; empty
  # serves plain HTTP for a TLS-terminating proxy in front.
  tls_cert: ""
  tls_key: ""
  # A closed federation: only these servers are talked to or accepted, both
  # ways (e.g. [ministere-a.gouv.fr, ministere-b.gouv.fr]). Empty: any server.
  allowed_servers: []
  # server name -> host:port, tried before DNS discovery (closed networks).
  host_map: {}
  # Certificate authorities trusted for outbound TLS besides the system's.
  extra_ca_files: []
  # Notaries asked for other servers' keys when a server cannot be reached
  # directly, e.g. [{server_name: matrix.org, verify_keys: {"ed25519:auto": "Noi6..."}}].
  # Empty: keys come only from the servers themselves or pinned_keys.
  trusted_key_servers: []
  # Keys of other servers known in advance, never fetched:
  #   ministere-b.gouv.fr: {"ed25519:a_XYZ": "<unpadded base64 public key>"}
  pinned_keys: {}
  # This server's retired keys, still published so their signatures verify:
  #   - {key_id: "ed25519:old", public_key: "...", expired_at: 2026-01-01T00:00:00Z}
  old_verify_keys: []
  # How long other servers may cache this server's key.
  key_validity: 24h0m0s
  # /.well-known/matrix/server delegation (host:port); empty answers 404.
  well_known_server: ""
  # Longest wait for one request to another server.
  request_timeout: 30s

logging:
  level: info     # debug, info, warn, error
  format: text    # text or json

# TURN servers for VoIP calls (/voip/turnServer). No uris: none is offered.
# With shared_secret (coturn's static-auth-secret), each user gets
# credentials valid for user_lifetime; otherwise username/password are
# handed out as they are.
turn:
  uris: []
  shared_secret: ""
  user_lifetime: 1h0m0s
  username: ""
  password: ""

# Whom users contact about this server (/.well-known/matrix/support), e.g.
#   contacts: [{matrix_id: "@admin:example.gouv.fr", email_address: "", role: m.role.admin}]
#   support_page: https://example.gouv.fr/support
# Nothing set: the file is not served (404).
support:
  contacts: []
  support_page: ""

# Application service registration files (bridges, bots), one YAML file each
# with id, url, as_token, hs_token, sender_localpart and namespaces; relative
# paths are relative to data_dir. E.g. app_services: [/etc/chappe/irc.yaml]
app_services: []
`
