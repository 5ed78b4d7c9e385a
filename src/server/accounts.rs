//! Who may log in, where they land, and what they may do.
//!
//! Accounts come from a small TOML file (`--users`):
//!
//! ```toml
//! [[user]]
//! name = "alice"
//! password = "$argon2id$v=19$m=19456,t=2,p=1$..."   # ftp-server hash-password
//! home = "/alice"                                    # inside the root; default "/"
//! permissions = ["read", "write", "delete"]          # default ["read"]
//! ```
//!
//! Passwords are stored as argon2 hashes in the PHC string format. Checking a name
//! that has no account costs the same argon2 work as a wrong password, so the
//! timing does not tell which names exist (RFC 2577 §5).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::Deserialize;

use crate::path::VirtualPath;

/// What a logged-in user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Perms {
    /// RETR, SIZE, MDTM, HASH and the listings.
    pub read: bool,
    /// STOR, APPE, MKD and RNTO.
    pub write: bool,
    /// DELE, RMD and RNFR.
    pub delete: bool,
}

impl Perms {
    /// Everything.
    pub const ALL: Perms = Perms {
        read: true,
        write: true,
        delete: true,
    };

    /// Reading only.
    pub const READ: Perms = Perms {
        read: true,
        write: false,
        delete: false,
    };
}

/// Whether and how `anonymous` (or `ftp`) may log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anonymous {
    /// No anonymous login.
    Off,
    /// Anonymous users may read.
    Read,
    /// Anonymous users may read, write and delete.
    Write,
}

impl Anonymous {
    /// The permissions of an anonymous session, or `None` when anonymous login is off.
    pub fn perms(self) -> Option<Perms> {
        match self {
            Anonymous::Off => None,
            Anonymous::Read => Some(Perms::READ),
            Anonymous::Write => Some(Perms::ALL),
        }
    }
}

/// One account.
#[derive(Debug, Clone)]
pub struct User {
    /// The login name.
    pub name: String,
    hash: String,
    /// The directory the user sees as `/`, relative to the server root.
    pub home: VirtualPath,
    /// What the user may do.
    pub perms: Perms,
}

/// Why the users file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("{}: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        source: toml::de::Error,
    },
    /// An entry is wrong: a bad hash, a home outside the root, an unknown permission.
    #[error("{}: user {user:?}: {problem}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The user entry.
        user: String,
        /// What is wrong with it.
        problem: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    user: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    password: String,
    #[serde(default)]
    home: Option<String>,
    #[serde(default)]
    permissions: Option<Vec<String>>,
}

/// The accounts, by name.
#[derive(Debug, Clone, Default)]
pub struct Users {
    by_name: HashMap<String, User>,
}

/// A hash of a password nobody has, checked against when a name has no account.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2ltcGxlLWZ0cC1kdW1teQ$2Nc2yN+1xWQ8aOt6mM7GBmtKLTWvMdTeqfrZhY2J8mA";

impl Users {
    /// Reads and checks a users file.
    ///
    /// # Errors
    /// [`AccountsError`] naming the file and, for a bad entry, the user and the problem.
    pub fn load(path: &Path) -> Result<Users, AccountsError> {
        let text = std::fs::read_to_string(path).map_err(|source| AccountsError::Read {
            path: path.to_owned(),
            source,
        })?;
        Users::parse(&text).map_err(|e| match e {
            ParseProblem::Toml(source) => AccountsError::Parse {
                path: path.to_owned(),
                source,
            },
            ParseProblem::Entry { user, problem } => AccountsError::Invalid {
                path: path.to_owned(),
                user,
                problem,
            },
        })
    }

    fn parse(text: &str) -> Result<Users, ParseProblem> {
        let file: File = toml::from_str(text).map_err(ParseProblem::Toml)?;
        let mut by_name = HashMap::new();
        for entry in file.user {
            let bad = |problem: String| ParseProblem::Entry {
                user: entry.name.clone(),
                problem,
            };
            if entry.name.is_empty() || entry.name.contains(char::is_whitespace) {
                return Err(bad("a name must be a single word".into()));
            }
            PasswordHash::new(&entry.password).map_err(|e| {
                bad(format!(
                    "password is not an argon2 hash ({e}); use ftp-server hash-password"
                ))
            })?;
            let home = VirtualPath::root()
                .join(entry.home.as_deref().unwrap_or("/"))
                .map_err(|e| bad(format!("bad home: {e}")))?;
            let mut perms = Perms::default();
            for p in entry.permissions.as_deref().unwrap_or(&["read".to_owned()]) {
                match p.as_str() {
                    "read" => perms.read = true,
                    "write" => perms.write = true,
                    "delete" => perms.delete = true,
                    other => {
                        return Err(bad(format!(
                            "unknown permission {other:?} (read, write, delete)"
                        )))
                    }
                }
            }
            let user = User {
                name: entry.name.clone(),
                hash: entry.password,
                home,
                perms,
            };
            if by_name.insert(entry.name.clone(), user).is_some() {
                return Err(bad("listed twice".into()));
            }
        }
        Ok(Users { by_name })
    }

    /// How many accounts there are.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are no accounts.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The account of `name` when `password` is right. A name without an account
    /// costs the same work as a wrong password.
    pub fn check(&self, name: &str, password: &str) -> Option<&User> {
        let user = self.by_name.get(name);
        let hash = user.map_or(DUMMY_HASH, |u| u.hash.as_str());
        let ok = PasswordHash::new(hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        user.filter(|_| ok)
    }
}

enum ParseProblem {
    Toml(toml::de::Error),
    Entry { user: String, problem: String },
}

/// An argon2id hash of `password` with a fresh random salt, in the PHC string format
/// that the users file takes.
///
/// # Errors
/// When the system's random number generator fails.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_wrong_passwords_do_not() {
        let hash = hash_password("s3cret").expect("hash");
        let text = format!(
            "[[user]]\nname = \"alice\"\npassword = \"{hash}\"\nhome = \"/alice\"\n\
             permissions = [\"read\", \"write\"]\n\n\
             [[user]]\nname = \"bob\"\npassword = \"{hash}\"\n"
        );
        let users = Users::parse(&text).ok().expect("parse");
        assert_eq!(users.len(), 2);
        let alice = users.check("alice", "s3cret").expect("alice logs in");
        assert_eq!(alice.home.as_str(), "/alice");
        assert_eq!(
            alice.perms,
            Perms {
                read: true,
                write: true,
                delete: false
            }
        );
        assert!(users.check("alice", "wrong").is_none());
        assert!(users.check("nobody", "s3cret").is_none());
        let bob = users.check("bob", "s3cret").expect("bob");
        assert_eq!((bob.home.as_str(), bob.perms), ("/", Perms::READ));
    }

    #[test]
    fn the_dummy_hash_is_a_valid_hash() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn bad_entries_are_refused_with_a_reason() {
        let cases = [
            ("[[user]]\nname = \"a\"\npassword = \"plain\"\n", "argon2"),
            (
                "[[user]]\nname = \"a b\"\npassword = \"x\"\n",
                "single word",
            ),
            (
                "[[user]]\nname = \"a\"\npassword = \"x\"\ncolour = 1\n",
                "unknown field",
            ),
        ];
        for (text, why) in cases {
            let err = match Users::parse(text) {
                Ok(_) => panic!("accepted {text:?}"),
                Err(ParseProblem::Toml(e)) => e.to_string(),
                Err(ParseProblem::Entry { problem, .. }) => problem,
            };
            assert!(err.contains(why), "{text:?}: {err}");
        }
        let hash = hash_password("x").expect("hash");
        let text =
            format!("[[user]]\nname = \"a\"\npassword = \"{hash}\"\npermissions = [\"admin\"]\n");
        assert!(matches!(
            Users::parse(&text),
            Err(ParseProblem::Entry { .. })
        ));
    }
}
