//! `sshield export`: the host's store as one JSON document for `sshield-server user import
//! --from-sshield` (docs/server.md). It holds every exported user's secrets, so a file is
//! made new with mode 0600 and never over an existing one.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use sshield_core::export::HostExport;
use zeroize::Zeroizing;

use super::{user_name, Context};
use crate::failure::Failure;

pub(crate) fn run(ctx: &Context, users: &[String], output: Option<&Path>) -> Result<(), Failure> {
    let names = if users.is_empty() {
        ctx.store.users()?
    } else {
        users
            .iter()
            .map(|u| user_name(u))
            .collect::<Result<Vec<_>, _>>()?
    };
    let mut records = Vec::with_capacity(names.len());
    for name in &names {
        records.push(ctx.record(name)?);
    }
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let document = HostExport::new(&host, ctx.now.0, records);
    let mut text = Zeroizing::new(
        serde_json::to_string_pretty(&document)
            .map_err(|e| Failure::Error(format!("cannot write the export as JSON: {e}")))?,
    );
    text.push('\n');
    match output {
        None => io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .map_err(|e| Failure::Error(format!("cannot write to standard output: {e}")))?,
        Some(path) => {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| {
                    Failure::Error(format!(
                        "cannot create {}: {e}{}",
                        path.display(),
                        if e.kind() == io::ErrorKind::AlreadyExists {
                            "; the export holds secrets and is never written over an existing \
                             file: remove it or name a new one"
                        } else {
                            ""
                        }
                    ))
                })?;
            file.write_all(text.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| Failure::Error(format!("cannot write {}: {e}", path.display())))?;
            eprintln!(
                "sshield: exported {} user{} to {} (mode 0600: it holds their secrets; delete it \
                 once imported)",
                names.len(),
                if names.len() == 1 { "" } else { "s" },
                path.display()
            );
        }
    }
    Ok(())
}
