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
//! that has no account costs the same argon2 work as a wrong password (it is checked
//! against a dummy hash with the parameters of the costliest real one), so the timing
//! does not tell which names exist (RFC 2577 §5).
//!
//! Argon2 is memory-hard: each check fills megabytes. Allocating them per check lets a
//! stream of failed logins grow the process without bound (glibc keeps the freed blocks
//! in per-thread arenas), and lets any number of checks run at once. So the working
//! memory is a fixed pool (`Memory`): about one block set per core, allocated when the
//! users file is loaded, sized for its largest hash, and lent to one check at a time. A
//! check waits for a free set, which also bounds how many run at once. A hash that
//! would need more than [`MAX_CHECK_KIB`] is refused at load. Without accounts there is
//! no pool and no hashing at all: no name can succeed, so there is nothing to hide.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use crossbeam_channel::{Receiver, Sender};
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
    hash: Hash,
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
    /// An entry is wrong: a bad hash, a hash that needs more memory than a check may
    /// use, a home outside the root, an unknown permission.
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

/// The most argon2 memory one check may use, in KiB (argon2's unit for `m`): 256 MiB,
/// above the RFC 9106 and OWASP recommendations for servers (64 MiB and 19-47 MiB).
/// The pool holds one such set per core at most, so a larger `m` is refused at load
/// rather than allocated.
pub const MAX_CHECK_KIB: u32 = 256 * 1024;

/// The accounts, by name, and the memory their password checks run in.
#[derive(Debug, Clone, Default)]
pub struct Users {
    by_name: HashMap<String, User>,
    /// What a name without an account is checked against: the parameters of the
    /// costliest real hash, a fixed salt and an output nobody's password gives.
    dummy: Option<Hash>,
    /// `None` without accounts: then nothing is ever hashed.
    memory: Option<Arc<Memory>>,
}

/// The salt of the hash that names without an account are checked against.
const DUMMY_SALT: &[u8] = b"simple-ftp-dummy";

impl Users {
    /// Reads and checks a users file, and allocates the memory its password checks
    /// run in (about one argon2 block set per core, sized for the largest hash).
    ///
    /// # Errors
    /// [`AccountsError`] naming the file and, for a bad entry, the user and the problem
    /// (among them a hash that needs more than [`MAX_CHECK_KIB`] of memory).
    pub fn load(path: &Path) -> Result<Users, AccountsError> {
        let text = std::fs::read_to_string(path).map_err(|source| AccountsError::Read {
            path: path.to_owned(),
            source,
        })?;
        Users::parse(&text, MAX_CHECK_KIB, parallel_checks()).map_err(|e| match e {
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

    /// Parses a users file whose hashes may use up to `max_kib` of memory each, and
    /// makes a pool of `sets` block sets for the checks.
    fn parse(text: &str, max_kib: u32, sets: usize) -> Result<Users, ParseProblem> {
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
            let hash = Hash::parse(&entry.password).map_err(|e| {
                bad(format!(
                    "password is not an argon2 hash ({e}); use ftp-server hash-password"
                ))
            })?;
            if hash.argon2.params().m_cost() > max_kib {
                return Err(bad(format!(
                    "the password hash needs {} KiB of argon2 memory (m), more than the {max_kib} \
                     KiB a check may use; make a new one with ftp-server hash-password",
                    hash.argon2.params().m_cost()
                )));
            }
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
                hash,
                home,
                perms,
            };
            if by_name.insert(entry.name.clone(), user).is_some() {
                return Err(bad("listed twice".into()));
            }
        }
        let costliest = by_name.values().map(|u| &u.hash).max_by_key(|h| h.cost());
        let Some(dummy) = costliest.map(Hash::dummy_like) else {
            return Ok(Users::default());
        };
        // The dummy has the costliest hash's parameters, so it needs no more than it.
        let blocks = by_name
            .values()
            .map(|u| u.hash.blocks())
            .chain([dummy.blocks()])
            .max()
            .unwrap_or(0);
        Ok(Users {
            by_name,
            dummy: Some(dummy),
            memory: Some(Arc::new(Memory::new(sets, blocks))),
        })
    }

    /// How many accounts there are.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are no accounts.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// How many password checks may run at once and how many bytes of argon2 memory
    /// each has, allocated at load; `None` without accounts (nothing is hashed).
    pub fn check_memory(&self) -> Option<(usize, usize)> {
        self.memory
            .as_ref()
            .map(|m| (m.sets, m.blocks * Block::SIZE))
    }

    /// The account of `name` when `password` is right. A name without an account
    /// costs the same work as a wrong password. Waits for free argon2 memory while
    /// as many checks as the pool has sets are running. Without accounts this
    /// refuses at once, with no hashing.
    pub fn check(&self, name: &str, password: &str) -> Option<&User> {
        let (memory, dummy) = (self.memory.as_deref()?, self.dummy.as_ref()?);
        let user = self.by_name.get(name);
        let hash = user.map_or(dummy, |u| &u.hash);
        let ok = memory.verify(hash, password.as_bytes());
        user.filter(|_| ok)
    }
}

enum ParseProblem {
    Toml(toml::de::Error),
    Entry { user: String, problem: String },
}

/// About one password check per core: more would only queue for the CPU while holding
/// memory.
fn parallel_checks() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A stored password hash, parsed once: the argon2 context with its algorithm,
/// version and parameters, the salt, and the expected output.
#[derive(Debug, Clone)]
struct Hash {
    argon2: Argon2<'static>,
    salt: Vec<u8>,
    output: Output,
}

impl Hash {
    /// Parses a PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).
    fn parse(phc: &str) -> Result<Hash, argon2::password_hash::Error> {
        use argon2::password_hash::Error;
        let parsed = PasswordHash::new(phc)?;
        let algorithm = Algorithm::try_from(parsed.algorithm)?;
        // As the crate's own verifier: a missing version means the current one.
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()?
            .unwrap_or_default();
        let params = Params::try_from(&parsed)?;
        let output = parsed.hash.ok_or(Error::PhcStringField)?;
        let salt = parsed.salt.ok_or(Error::PhcStringField)?;
        let mut salt_bytes = [0; 64];
        let salt = salt.decode_b64(&mut salt_bytes)?.to_vec();
        Ok(Hash {
            argon2: Argon2::new(algorithm, version, params),
            salt,
            output,
        })
    }

    /// A hash with the same algorithm, version, parameters and output length as
    /// `like`, which no password is known to give.
    fn dummy_like(like: &Hash) -> Hash {
        let zeros = [0; Output::MAX_LENGTH];
        Hash {
            argon2: like.argon2.clone(),
            salt: DUMMY_SALT.to_vec(),
            // The length is the stored hash's, which passed the same bounds.
            output: Output::new(&zeros[..like.output.len()]).unwrap_or(like.output),
        }
    }

    /// The memory blocks (of 1 KiB) a computation needs.
    fn blocks(&self) -> usize {
        self.argon2.params().block_count()
    }

    /// The work of one computation: memory times passes.
    fn cost(&self) -> u64 {
        self.blocks() as u64 * u64::from(self.argon2.params().t_cost())
    }
}

/// Argon2 working memory: `sets` sets of `blocks` blocks, allocated once and lent to one
/// check at a time over a channel that holds the free ones.
struct Memory {
    sets: usize,
    blocks: usize,
    give_back: Sender<Vec<Block>>,
    free: Receiver<Vec<Block>>,
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory")
            .field("sets", &self.sets)
            .field("blocks", &self.blocks)
            .finish_non_exhaustive()
    }
}

impl Memory {
    /// Allocates `sets` (at least one) sets of `blocks` blocks. Every block is written
    /// here, so the memory is resident from the start and checks never grow the process.
    fn new(sets: usize, blocks: usize) -> Memory {
        let sets = sets.max(1);
        let (give_back, free) = crossbeam_channel::bounded(sets);
        for _ in 0..sets {
            // The channel holds exactly `sets` items and this side keeps the receiver,
            // so the send cannot fail.
            let _ = give_back.send(vec![Block::new(); blocks]);
        }
        Memory {
            sets,
            blocks,
            give_back,
            free,
        }
    }

    /// Whether `password` gives `hash`: the hash recomputed with its own parameters and
    /// salt in a borrowed set, and compared in constant time. Waits for a free set. A
    /// hash that needs more blocks than a set has is refused.
    fn verify(&self, hash: &Hash, password: &[u8]) -> bool {
        if hash.blocks() > self.blocks {
            return false;
        }
        let Ok(set) = self.free.recv() else {
            return false;
        };
        let mut lent = Lent {
            set,
            back: &self.give_back,
        };
        let mut out = [0; Output::MAX_LENGTH];
        let out = &mut out[..hash.output.len()];
        let computed = hash.argon2.hash_password_into_with_memory(
            password,
            &hash.salt,
            out,
            &mut lent.set[..],
        );
        drop(lent);
        // Output's equality is constant-time (subtle's ct_eq).
        computed.is_ok() && Output::new(out).is_ok_and(|out| out == hash.output)
    }
}

/// A borrowed block set; dropping it gives it back, also if the check panics.
struct Lent<'a> {
    set: Vec<Block>,
    back: &'a Sender<Vec<Block>>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        // The pool keeps its receiver alive and has room for every set it lent.
        let _ = self.back.send(std::mem::take(&mut self.set));
    }
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

    /// A PHC string made by the crate's own (allocating) API with the given algorithm,
    /// version, `m`, `t`, `p` and output length.
    fn made_with(
        algorithm: Algorithm,
        version: Version,
        m: u32,
        t: u32,
        p: u32,
        len: usize,
    ) -> String {
        let params = Params::new(m, t, p, Some(len)).expect("params");
        let salt = SaltString::generate(&mut OsRng);
        Argon2::new(algorithm, version, params)
            .hash_password(b"right horse", &salt)
            .expect("hash")
            .to_string()
    }

    fn users_file(hashes: &[(&str, &str)]) -> String {
        hashes
            .iter()
            .map(|(name, hash)| format!("[[user]]\nname = \"{name}\"\npassword = \"{hash}\"\n\n"))
            .collect()
    }

    #[test]
    fn hashes_verify_and_wrong_passwords_do_not() {
        let hash = hash_password("s3cret").expect("hash");
        let text = format!(
            "[[user]]\nname = \"alice\"\npassword = \"{hash}\"\nhome = \"/alice\"\n\
             permissions = [\"read\", \"write\"]\n\n\
             [[user]]\nname = \"bob\"\npassword = \"{hash}\"\n"
        );
        let users = Users::parse(&text, MAX_CHECK_KIB, 2).ok().expect("parse");
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
    fn caller_memory_verification_takes_each_hashs_own_parameters() {
        let hashes = [
            hash_password("right horse").expect("hash"),
            made_with(Algorithm::Argon2id, Version::V0x13, 8, 1, 1, 32),
            made_with(Algorithm::Argon2id, Version::V0x13, 96, 3, 2, 16),
            made_with(Algorithm::Argon2i, Version::V0x13, 64, 2, 4, 64),
            made_with(Algorithm::Argon2d, Version::V0x10, 33, 4, 1, 32),
        ];
        let parsed: Vec<Hash> = hashes
            .iter()
            .map(|h| Hash::parse(h).expect("parse"))
            .collect();
        // One set, so every check also proves the set came back.
        let largest = parsed.iter().map(Hash::blocks).max().expect("hashes");
        let memory = Memory::new(1, largest);
        for (phc, hash) in hashes.iter().zip(&parsed) {
            // The crate's own verifier agrees that this is the password.
            let reference = PasswordHash::new(phc).expect("phc");
            assert!(reference
                .verify_password(&[&Argon2::default()], "right horse")
                .is_ok());
            assert!(memory.verify(hash, b"right horse"), "{phc}");
            assert!(!memory.verify(hash, b"right horsf"), "{phc}");
            assert!(!memory.verify(hash, b""), "{phc}");
        }
    }

    #[test]
    fn a_hash_needing_more_memory_than_the_pool_is_refused() {
        let big = made_with(Algorithm::Argon2id, Version::V0x13, 64, 1, 1, 32);
        let hash = Hash::parse(&big).expect("parse");
        assert!(!Memory::new(1, 32).verify(&hash, b"right horse"));
        assert!(Memory::new(1, 64).verify(&hash, b"right horse"));

        let small = made_with(Algorithm::Argon2id, Version::V0x13, 16, 1, 1, 32);
        let text = users_file(&[("small", &small), ("big", &big)]);
        match Users::parse(&text, 32, 1) {
            Err(ParseProblem::Entry { user, problem }) => {
                assert_eq!(user, "big");
                assert!(problem.contains("64 KiB"), "{problem}");
            }
            Err(ParseProblem::Toml(e)) => panic!("{e}"),
            Ok(_) => panic!("a hash past the limit was accepted"),
        }
        assert!(Users::parse(&text, 64, 1).is_ok());
    }

    #[test]
    fn the_pool_and_the_dummy_follow_the_costliest_hash() {
        let cheap = made_with(Algorithm::Argon2id, Version::V0x13, 16, 1, 1, 32);
        let dear = made_with(Algorithm::Argon2id, Version::V0x13, 256, 3, 2, 24);
        let text = users_file(&[("cheap", &cheap), ("dear", &dear)]);
        let users = Users::parse(&text, MAX_CHECK_KIB, 3).ok().expect("parse");
        assert_eq!(users.check_memory(), Some((3, 256 * Block::SIZE)));
        let dummy = users.dummy.as_ref().expect("dummy");
        let dear = Hash::parse(&dear).expect("parse");
        assert_eq!(dummy.argon2.params(), dear.argon2.params());
        assert_eq!(dummy.output.len(), 24);
        assert!(users.check("cheap", "right horse").is_some());
        assert!(users.check("dear", "right horse").is_some());
        assert!(users.check("nobody", "right horse").is_none());
        assert!(users.check("nobody", "").is_none());
    }

    #[test]
    fn without_accounts_nothing_is_hashed_or_allocated() {
        for users in [
            Users::default(),
            Users::parse("", MAX_CHECK_KIB, 2).ok().expect("parse"),
        ] {
            assert!(users.is_empty());
            assert_eq!(users.check_memory(), None);
            assert!(users.check("bob", "x").is_none());
        }
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
            (
                // A PHC string of another algorithm.
                "[[user]]\nname = \"a\"\npassword = \"$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo\"\n",
                "argon2",
            ),
        ];
        for (text, why) in cases {
            let err = match Users::parse(text, MAX_CHECK_KIB, 1) {
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
            Users::parse(&text, MAX_CHECK_KIB, 1),
            Err(ParseProblem::Entry { .. })
        ));
    }
}
