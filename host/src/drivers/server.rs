//! What database-server connectors share: telling connection failures apart
//! (DNS, refused, timeout, TLS, authentication, missing database, missing
//! permission) in messages that say what to do, with the password redacted.

use crate::config::{Secret, ServerEndpoint};

use super::{Cause, ConnectorError, FailureKind, FreeSpace, free_space_at};

/// What a driver's own error code says about a failed connection or query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFailure {
    /// The user name or password was refused.
    Auth,
    /// The database does not exist.
    MissingDatabase,
    /// The user lacks a privilege.
    Permission,
    /// The server accepts this connection only over TLS.
    TlsRequired,
    /// The server's access rules refuse this host, user or database.
    HostNotAllowed,
    /// The server ended the connection: it is shutting down, restarting or
    /// not yet accepting work. A new connection may carry on.
    ConnectionLost,
    /// The server's disk (or a table's file) is full.
    Full,
}

/// Whether an I/O error means the connection broke or cannot be made for
/// now (the server closed it, restarted, or is not listening yet): what was
/// committed stands, and a new connection may carry on.
pub fn is_lost(io: &std::io::Error) -> bool {
    use std::io::ErrorKind::{
        BrokenPipe, ConnectionAborted, ConnectionRefused, ConnectionReset, NotConnected,
        UnexpectedEof,
    };
    matches!(
        io.kind(),
        BrokenPipe
            | ConnectionAborted
            | ConnectionRefused
            | ConnectionReset
            | NotConnected
            | UnexpectedEof
    )
}

fn is_tls_failure(io: &str) -> bool {
    // rustls phrases: "invalid peer certificate: UnknownIssuer", "received
    // fatal alert: HandshakeFailure", "peer sent no certificates".
    [
        "certificate",
        "Certificate",
        "handshake",
        "Handshake",
        "fatal alert",
        "TLS",
    ]
    .iter()
    .any(|needle| io.contains(needle))
}

/// `role kind user@host:port/database`, for messages (never the password).
pub fn describe(role: &str, kind: &str, ep: &ServerEndpoint, port: u16) -> String {
    format!(
        "{role} {kind} {}@{}:{port}/{}",
        ep.user, ep.host, ep.database
    )
}

/// The error of a connection attempt that got no answer within `limit`.
pub fn no_answer(limit: std::time::Duration) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("no answer within {} s", limit.as_secs()),
    ))
}

/// Turns a driver error into an actionable message. `classify` reads the
/// driver's own error codes.
pub fn connect_error(
    endpoint: &str,
    err: &sqlx::Error,
    ep: &ServerEndpoint,
    port: u16,
    password: Option<&Secret>,
    classify: impl Fn(&dyn sqlx::error::DatabaseError) -> Option<DbFailure>,
) -> ConnectorError {
    let (host, db, user) = (&ep.host, &ep.database, &ep.user);
    let mut kind = FailureKind::Other;
    let message = match err {
        // A rejected certificate surfaces from the handshake as an I/O error.
        sqlx::Error::Io(io) if is_tls_failure(&io.to_string()) => format!(
            "TLS failed with {host}:{port}: {io}; the server's certificate is not trusted or not valid for `{host}`: check `tls` (verify-full needs a certificate for this host name from a trusted authority)"
        ),
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            kind = FailureKind::ConnectionLost;
            format!(
                "connection refused by {host}:{port}: is the server running and listening on that port? ({io})"
            )
        }
        sqlx::Error::Io(io) if is_lost(io) => {
            kind = FailureKind::ConnectionLost;
            format!(
                "connection to {host}:{port} lost: the server closed it, restarted or went away ({io})"
            )
        }
        sqlx::Error::Io(io)
            if io.to_string().contains("lookup") || io.to_string().contains("resolve") =>
        {
            format!("cannot resolve host `{host}` (DNS): check `host` for typos ({io})")
        }
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            format!(
                "timed out connecting to {host}:{port}: check the address, any firewall, and that the server is running ({io})"
            )
        }
        // The server took connections when it was opened: the pool had no
        // free one and could not open another in time.
        sqlx::Error::PoolTimedOut => {
            kind = FailureKind::ConnectionLost;
            format!(
                "{host}:{port} accepts no new connection: it answered before, so it has stopped answering or has no free connection left (max_connections); check the server"
            )
        }
        sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
            kind = FailureKind::ConnectionLost;
            format!("connection to {host}:{port} lost ({err})")
        }
        sqlx::Error::Tls(tls) => format!(
            "TLS failed with {host}:{port}: {tls}; check `tls` (disable, prefer, require, verify-full) and the server's certificate"
        ),
        sqlx::Error::Database(db_err) => match classify(db_err.as_ref()) {
            Some(DbFailure::Auth) => format!(
                "authentication failed for user `{user}`: check the user and the password in password_env/password_file ({})",
                db_err.message()
            ),
            Some(DbFailure::MissingDatabase) => {
                format!(
                    "database `{db}` does not exist on {host}:{port}: check `database` ({})",
                    db_err.message()
                )
            }
            Some(DbFailure::TlsRequired) => format!(
                "{host}:{port} accepts only TLS connections: set `tls = \"require\"` (or \"verify-full\") ({})",
                db_err.message()
            ),
            Some(DbFailure::HostNotAllowed) => format!(
                "the server's access rules refuse user `{user}` on database `{db}` from this host: ask its administrator to allow it ({})",
                db_err.message()
            ),
            Some(DbFailure::Permission) => format!(
                "user `{user}` lacks a needed privilege: {}; grant it or connect as another user",
                db_err.message()
            ),
            Some(DbFailure::ConnectionLost) => {
                kind = FailureKind::ConnectionLost;
                format!(
                    "{host}:{port} ended the connection: the server is shutting down, restarting or starting ({})",
                    db_err.message()
                )
            }
            Some(DbFailure::Full) => {
                kind = FailureKind::Full;
                format!(
                    "the disk is full ({}): free space on {host}'s disk for database `{db}`, or move the destination to a server with room",
                    db_err.message()
                )
            }
            None => db_err.message().to_string(),
        },
        other => other.to_string(),
    };
    let message = match password {
        Some(secret) => secret.redact(&message),
        None => message,
    };
    ConnectorError::new(endpoint, message)
        .of_kind(kind)
        .caused_by(Cause::of(err, password))
}

/// Whether `host` names this machine, so a server's data directory is a
/// path here.
pub fn is_local(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The free space of a server's data directory `dir` (as the server
/// reported it), when the server runs on this machine.
pub fn data_dir_space(host: &str, dir: &str) -> FreeSpace {
    if !is_local(host) {
        return FreeSpace::Unknown(format!(
            "the server runs on `{host}`, not this machine, so its disks cannot be measured from here"
        ));
    }
    let path = std::path::Path::new(dir);
    if !path.is_dir() {
        return FreeSpace::Unknown(format!(
            "the server's data directory {dir} is not visible from here (a container or another mount namespace?)"
        ));
    }
    free_space_at(path)
}

/// A refused privilege as a message that names it and the GRANT that gives
/// it (the server's message says what was refused).
pub fn denied(endpoint: &str, user: &str, refused: &str, grant: &str) -> ConnectorError {
    ConnectorError::new(
        endpoint,
        format!(
            "user `{user}` lacks a needed privilege: {refused}; an administrator can grant it with `{grant}` (or connect as another user)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A password with a quote and a backslash, which `Debug` escapes.
    const PASSWORD: &str = "hun\"ter\\2";

    /// Every text `err` and its chain of sources show, by `Display` and by
    /// `Debug`.
    fn every_text(err: &(dyn std::error::Error + 'static)) -> Vec<String> {
        let mut texts = Vec::new();
        let mut next = Some(err);
        while let Some(e) = next {
            texts.push(e.to_string());
            texts.push(format!("{e:?}"));
            next = e.source();
        }
        texts
    }

    #[test]
    fn a_kept_cause_never_shows_the_password() {
        let ep: ServerEndpoint = toml::from_str("database = \"d\"\nuser = \"u\"").unwrap();
        let secret = Secret::new(PASSWORD);
        let inner = std::io::Error::other(format!("bad option password={PASSWORD}"));
        let err = sqlx::Error::Configuration(Box::new(inner));
        assert!(
            format!("{err} {err:?}").contains("hun"),
            "the test's error holds it"
        );
        let e = connect_error(
            "source postgres u@h:5432/d",
            &err,
            &ep,
            5432,
            Some(&secret),
            |_| None,
        );
        let texts = every_text(&e);
        assert!(
            texts.len() >= 6,
            "the cause and its own source are kept: {texts:?}"
        );
        let escaped = PASSWORD.escape_debug().to_string();
        for text in texts
            .iter()
            .chain([&format!("{:#}", anyhow::Error::from(e))])
        {
            assert!(
                !text.contains(PASSWORD) && !text.contains(&escaped) && !text.contains("hun"),
                "{text}"
            );
            assert!(text.contains("***"), "the redacted text is kept: {text}");
        }
    }

    #[test]
    fn a_kept_cause_is_already_told_by_the_message() {
        let ep: ServerEndpoint = toml::from_str("database = \"d\"\nuser = \"u\"").unwrap();
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = connect_error("x", &sqlx::Error::Io(refused), &ep, 5432, None, |_| None);
        let cause = std::error::Error::source(&e).expect("the driver error is kept");
        assert!(e.message.contains("refused") && cause.to_string().contains("refused"));
        assert_eq!(e.kind, FailureKind::ConnectionLost);
    }

    #[test]
    fn a_pool_timeout_says_the_server_stopped_taking_connections() {
        let ep: ServerEndpoint = toml::from_str("database = \"d\"\nuser = \"u\"").unwrap();
        let e = connect_error("x", &sqlx::Error::PoolTimedOut, &ep, 5432, None, |_| None);
        assert!(
            e.message
                .contains("127.0.0.1:5432 accepts no new connection")
                && !e.message.contains("firewall"),
            "{}",
            e.message
        );
        let e = connect_error(
            "x",
            &no_answer(std::time::Duration::from_secs(20)),
            &ep,
            5432,
            None,
            |_| None,
        );
        assert!(
            e.message.contains("timed out connecting")
                && e.message.contains("no answer within 20 s"),
            "{}",
            e.message
        );
    }

    #[test]
    fn only_loopback_hosts_are_local() {
        assert!(is_local("127.0.0.1") && is_local("::1") && is_local("LocalHost"));
        assert!(is_local("127.0.0.2"));
        assert!(!is_local("db.internal") && !is_local("10.0.0.5"));
        assert!(matches!(
            data_dir_space("db.internal", "/var/lib/postgresql"),
            FreeSpace::Unknown(why) if why.contains("not this machine")
        ));
        assert!(matches!(
            data_dir_space("127.0.0.1", "/no/such/dir"),
            FreeSpace::Unknown(why) if why.contains("not visible from here")
        ));
        assert!(matches!(
            data_dir_space("localhost", "/"),
            FreeSpace::Known { bytes, .. } if bytes > 0
        ));
    }
}
