//! `civitas audit …`: verify (against exported checkpoints too), export,
//! checkpoint, prune, accept; and covering what other commands wrote.

use std::path::PathBuf;

use clap::Subcommand;

use super::CliResult;
use crate::app::key_retention_secs;
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::keys::KeyManager;
use crate::store::Database;

#[derive(Debug, Subcommand)]
pub(super) enum AuditCommand {
    /// Check the whole hash chain, the signed checkpoints and the pruned
    /// marker; exits with 1 and names the first break if the log was altered.
    Verify {
        /// Also check the log against the checkpoints exported to this file
        /// (`audit.checkpoint_file` as shipped to append-only storage, or
        /// JSON log lines); repeatable.
        #[arg(long = "trusted", value_name = "FILE")]
        trusted: Vec<PathBuf>,
        /// Also check signatures with the public key in this file (a JWK, or
        /// a JWK Set such as Civitas's published JWKS, whose P-256 keys are
        /// taken): a key of Civitas whose files left the keys directory.
        /// Only keys of the keys directory and these check anything; the key
        /// a line of a trusted file carries never does. Repeatable.
        #[arg(long = "trusted-key", value_name = "FILE")]
        trusted_keys: Vec<PathBuf>,
    },
    /// Write the entries as JSON Lines, oldest first.
    Export {
        /// Only entries from this Unix time on.
        #[arg(long)]
        since: Option<i64>,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Sign a checkpoint of the chain's head now (and export it).
    Checkpoint,
    /// Remove the entries older than `audit.retention` now.
    Prune,
    /// Sign the log as it is now as checked by the operator: entries up to
    /// the head that no checkpoint covered in time (a crash, a stop) are no
    /// longer reported, nor a pruned marker nothing signed that a version
    /// before 0014 left (refused once a later version signed the marker).
    /// Only after checking them (see docs/operations.md).
    Accept,
}

pub(super) async fn audit(
    command: AuditCommand,
    settings: &Settings,
    clock: &SharedClock,
) -> CliResult {
    let db = Database::connect(&settings.database_url, &settings.database).await?;
    db.migrate().await?;
    let now = clock.now();
    // What a running instance would do within a second: chain the entries
    // written since, so that they are verified, exported and covered.
    let sealed = crate::audit::seal(&db).await?;
    if sealed > 0 {
        eprintln!("{sealed} entries written since the last seal were sealed");
    }
    match command {
        AuditCommand::Verify {
            trusted,
            trusted_keys,
        } => {
            let keys = KeyManager::open(
                &settings.keys_dir,
                clock.clone(),
                key_retention_secs(settings),
            )?;
            let mut lines = Vec::new();
            for path in &trusted {
                let read = crate::audit::anchor::read(path)?;
                if read.is_empty() {
                    return Err(format!("{}: holds no checkpoint", path.display()).into());
                }
                lines.extend(read);
            }
            let mut pinned = Vec::new();
            for path in &trusted_keys {
                pinned.extend(read_keys(path)?);
            }
            let how = crate::audit::Verification::new(&settings.audit, now)
                .trusting(&lines)
                .pinning(&pinned);
            let report = crate::audit::verify(&db, &keys, &how).await?;
            println!(
                "{} entries, {} signed checkpoints checked ({} signed by keys not at hand), {} exported checkpoints checked; {} written meanwhile, not yet sealed",
                report.entries,
                report.checkpoints,
                report.unverifiable_checkpoints,
                report.trusted_checkpoints,
                report.unsealed
            );
            match report.broken {
                None => {
                    println!("the audit chain is intact");
                    Ok(())
                }
                Some(b) => Err(format!(
                    "the audit chain is broken at entry {}: {}",
                    b.seq, b.reason
                )
                .into()),
            }
        }
        AuditCommand::Export { since, out } => {
            let since = since.map(crate::clock::UnixTime);
            let n = match out {
                Some(path) => {
                    let file = std::fs::File::create(&path)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    let mut w = std::io::BufWriter::new(file);
                    let n = crate::audit::query::export_jsonl(&db, since, &mut w).await?;
                    std::io::Write::flush(&mut w)?;
                    n
                }
                None => {
                    let mut w = std::io::BufWriter::new(std::io::stdout().lock());
                    let n = crate::audit::query::export_jsonl(&db, since, &mut w).await?;
                    std::io::Write::flush(&mut w)?;
                    n
                }
            };
            eprintln!("{n} entries exported");
            Ok(())
        }
        AuditCommand::Checkpoint => {
            let keys = KeyManager::open(
                &settings.keys_dir,
                clock.clone(),
                key_retention_secs(settings),
            )?;
            let mut anchor =
                crate::audit::anchor::Anchor::new(settings.audit.checkpoint_file.clone());
            let signed = anchor.checkpoint(&db, &keys, now).await?;
            if anchor.pending() > 0 {
                return Err(format!(
                    "the checkpoint was signed but could not be written to {}",
                    settings.audit.checkpoint_file.display()
                )
                .into());
            }
            match signed {
                Some(s) => println!(
                    "checkpoint signed at entry {} and written to {}",
                    s.claims.seq,
                    settings.audit.checkpoint_file.display()
                ),
                None => println!("the head already has a checkpoint (or the log is empty)"),
            }
            Ok(())
        }
        AuditCommand::Prune => {
            let keys = KeyManager::open(
                &settings.keys_dir,
                clock.clone(),
                key_retention_secs(settings),
            )?;
            let keep = i64::try_from(settings.audit.retention.as_secs()).unwrap_or(i64::MAX);
            let cutoff = crate::clock::UnixTime(now.0 - keep);
            let n = crate::audit::retention::prune(&db, &keys, cutoff, now).await?;
            println!("{n} entries older than the retention period removed");
            Ok(())
        }
        AuditCommand::Accept => {
            let keys = KeyManager::open(
                &settings.keys_dir,
                clock.clone(),
                key_retention_secs(settings),
            )?;
            let exported = &settings.audit.checkpoint_file;
            match crate::audit::accept::accept(&db, &keys, exported, now).await? {
                None => println!("the log is empty: nothing to accept"),
                Some(a) => {
                    if let Some(seq) = a.marker {
                        println!("the pruned marker (entry {seq}) is signed as accepted");
                    }
                    println!("entries up to {} are accepted as they are", a.through_seq);
                }
            }
            Ok(())
        }
    }
}

/// The P-256 public keys of the JWK or JWK Set in `path`.
fn read_keys(path: &std::path::Path) -> Result<Vec<crate::audit::signature::PublicKey>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|_| format!("{}: not a JWK or a JWK Set", path.display()))?;
    let keys = crate::audit::signature::PublicKey::all_in(&json);
    if keys.is_empty() {
        return Err(format!("{}: holds no P-256 public key", path.display()));
    }
    Ok(keys)
}

/// After a command that may have written audit entries: seals them and
/// signs and exports a checkpoint, as a running instance would within a
/// minute, so that they are covered in time even while no instance runs.
/// Only with the keys directory the instances use (never a new one).
pub(super) async fn cover_what_was_written(settings: &Settings, clock: &SharedClock) {
    if !settings.keys_dir.is_dir() {
        return;
    }
    let covered = async {
        let db = Database::connect(&settings.database_url, &settings.database).await?;
        crate::audit::seal(&db).await?;
        let keys = KeyManager::open(
            &settings.keys_dir,
            clock.clone(),
            key_retention_secs(settings),
        )?;
        let mut anchor = crate::audit::anchor::Anchor::new(settings.audit.checkpoint_file.clone());
        anchor.checkpoint(&db, &keys, clock.now()).await?;
        db.close().await;
        Ok::<_, Box<dyn std::error::Error>>(anchor.pending() == 0)
    };
    match covered.await {
        Ok(true) => {}
        Ok(false) => eprintln!(
            "the audit checkpoint was signed but not written to {}",
            settings.audit.checkpoint_file.display()
        ),
        Err(e) => eprintln!(
            "the audit entries written were not yet covered by a checkpoint ({e}); a running instance signs one within `audit.checkpoint_interval`"
        ),
    }
}
