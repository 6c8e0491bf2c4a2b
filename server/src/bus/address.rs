//! `--redis redis://[[user]:password@]host:port[/db]`: where the Redis server is, how to log
//! in, which database to select. The password may also come from the environment
//! (`FANOUT_REDIS_PASSWORD`, or `REDISCLI_AUTH` as `redis-cli` reads it).

use std::fmt;

/// A parsed `redis://` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisAddress {
    /// Host name or IP address.
    pub host: String,
    /// TCP port (6379 when the URL names none).
    pub port: u16,
    /// The ACL user for `AUTH user password` (Redis 6), if given.
    pub user: Option<String>,
    /// The password for `AUTH`, if any.
    pub password: Option<String>,
    /// The database for `SELECT` (pub/sub ignores it, but a URL may carry one).
    pub database: u32,
}

impl fmt::Debug for RedisAddress {
    /// Never prints the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for RedisAddress {
    /// `redis://host:port/db`, with `***` for a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let user = self.user.as_deref().unwrap_or("");
        let credentials = if self.password.is_some() {
            format!("{user}:***@")
        } else if self.user.is_some() {
            format!("{user}@")
        } else {
            String::new()
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(
            f,
            "redis://{credentials}{host}:{}/{}",
            self.port, self.database
        )
    }
}

impl RedisAddress {
    /// Parses `redis://[[user]:password@]host[:port][/db]`. Percent-escapes in the user and
    /// password are decoded (`%40` for `@`).
    pub fn parse(text: &str) -> Result<RedisAddress, String> {
        let rest = text.trim().strip_prefix("redis://").ok_or_else(|| {
            format!("`{text}` is not a redis:// URL (rediss:// is not supported)")
        })?;
        let (authority, path) = match rest.find('/') {
            Some(index) => (&rest[..index], &rest[index + 1..]),
            None => (rest, ""),
        };
        let (credentials, host_port) = match authority.rfind('@') {
            Some(index) => (Some(&authority[..index]), &authority[index + 1..]),
            None => (None, authority),
        };
        let (user, password) = match credentials {
            None => (None, None),
            Some(credentials) => match credentials.split_once(':') {
                Some((user, password)) => (
                    (!user.is_empty())
                        .then(|| percent_decode(user))
                        .transpose()?,
                    Some(percent_decode(password)?),
                ),
                // `redis://secret@host`: redis-cli reads a lone word as the password.
                None => (None, Some(percent_decode(credentials)?)),
            },
        };
        let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| format!("`{text}`: unclosed [ in the host"))?;
            (host, after.strip_prefix(':'))
        } else {
            match host_port.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (host_port, None),
            }
        };
        if host.is_empty() {
            return Err(format!("`{text}` names no host"));
        }
        let port = match port {
            None => 6379,
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|&port| port != 0)
                .ok_or_else(|| format!("`{text}`: `{port}` is not a port number"))?,
        };
        let database = match path.split('?').next().unwrap_or("") {
            "" => 0,
            number => number
                .parse()
                .map_err(|_| format!("`{text}`: `{number}` is not a database number"))?,
        };
        Ok(RedisAddress {
            host: host.to_owned(),
            port,
            user,
            password,
            database,
        })
    }

    /// `AUTH` and `SELECT`, in the order they are sent after connecting: what the link must
    /// hear `+OK` to before it is ready.
    pub fn login_commands(&self) -> Vec<Vec<Vec<u8>>> {
        let mut commands = Vec::new();
        if let Some(password) = &self.password {
            let mut auth = vec![b"AUTH".to_vec()];
            if let Some(user) = &self.user {
                auth.push(user.as_bytes().to_vec());
            }
            auth.push(password.as_bytes().to_vec());
            commands.push(auth);
        }
        if self.database != 0 {
            commands.push(vec![
                b"SELECT".to_vec(),
                self.database.to_string().into_bytes(),
            ]);
        }
        commands
    }
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text
                .get(index + 1..index + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| "a bad %-escape in the redis URL's credentials".to_owned())?;
            out.push(hex);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the redis URL's credentials are not UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_host_port_credentials_and_database() {
        let address = RedisAddress::parse("redis://127.0.0.1:6380/2").unwrap();
        assert_eq!(
            (address.host.as_str(), address.port, address.database),
            ("127.0.0.1", 6380, 2)
        );
        assert_eq!(address.password, None);
        let address = RedisAddress::parse("redis://:s%40cret@localhost").unwrap();
        assert_eq!(address.port, 6379);
        assert_eq!(address.password.as_deref(), Some("s@cret"));
        assert_eq!(address.user, None);
        let address = RedisAddress::parse("redis://bob:pw@[::1]:7000/").unwrap();
        assert_eq!(address.host, "::1");
        assert_eq!(address.user.as_deref(), Some("bob"));
        assert_eq!(address.to_string(), "redis://bob:***@[::1]:7000/0");
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        assert!(RedisAddress::parse("http://x:1")
            .unwrap_err()
            .contains("redis://"));
        assert!(RedisAddress::parse("redis://:6379")
            .unwrap_err()
            .contains("no host"));
        assert!(RedisAddress::parse("redis://h:99999")
            .unwrap_err()
            .contains("port"));
        assert!(RedisAddress::parse("redis://h:1/x")
            .unwrap_err()
            .contains("database"));
        assert!(RedisAddress::parse("redis://:%zz@h").is_err());
    }

    #[test]
    fn login_sends_auth_then_select_and_debug_hides_the_password() {
        let address = RedisAddress::parse("redis://:pw@h:1/3").unwrap();
        assert_eq!(
            address.login_commands(),
            vec![
                vec![b"AUTH".to_vec(), b"pw".to_vec()],
                vec![b"SELECT".to_vec(), b"3".to_vec()]
            ]
        );
        assert!(!format!("{address:?}").contains("pw"));
        assert!(RedisAddress::parse("redis://h")
            .unwrap()
            .login_commands()
            .is_empty());
    }
}
