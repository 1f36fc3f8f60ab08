//! `sshield setup`: configures sshd and PAM for sshield, as a trial that undoes itself unless
//! confirmed from a new ssh session that passed the second factor.
//!
//! - [`plan`](mod@plan): the files as they should be (pure text functions).
//! - [`files`]: backups, atomic replacement, restore, diffs.
//! - [`host`]: `sshd -t`/`-T`, reloading sshd, finding the module.
//! - [`state`]: the last change and its trial, under a lock.
//!
//! The order of an apply: plan → diff → checks (module, admin, daemon) → back up → write →
//! `sshd -t` → `sshd -T` → reload → start the watcher. Any failure after the first write puts
//! every file back (and reloads sshd if it had been reloaded).

pub(crate) mod files;
pub(crate) mod host;
pub(crate) mod plan;
pub(crate) mod state;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Serialize;
use sshield_core::config::DEFAULT_CONFIG_PATH;
use sshield_core::passed;
use sshield_core::record::UserState;
use sshield_core::{Account, Caller, Config, Engine, Requirement, UnixTime, UserName};

use crate::cli::{FailmodeArg, SetupArgs, SetupMode, UnenrolledArg};
use crate::failure::Failure;
use crate::procs::{self, Proc};
use crate::syslog;
use files::Change;
use host::Reload;
use plan::{PolicyEdits, Wanted};
use sshield_core::log::Severity;
use state::{SessionMark, State, Status};

/// How often the watcher looks at the state.
const WATCH_EVERY: Duration = Duration::from_millis(200);

pub(crate) fn run(config_path: &Path, args: &SetupArgs) -> Result<(), Failure> {
    if args.watch_trial {
        return watch(&args.state_dir);
    }
    if args.boot_guard {
        return boot_guard(config_path, &args.state_dir);
    }
    if args.status {
        return status(args);
    }
    if args.confirm {
        return confirm(args);
    }
    if args.undo {
        return undo(args);
    }
    apply(config_path, args)
}

/// Everything setup would write, worked out from the files as they are.
struct Planned {
    wanted: Wanted,
    changes: Vec<Change>,
    /// The sshd lines that must be in effect afterwards.
    sshd_lines: Vec<String>,
    config_text: String,
}

fn plan(config_path: &Path, args: &SetupArgs) -> Result<Planned, Failure> {
    let error = Failure::Error;
    let sshield_binary = std::env::current_exe()
        .map_err(|e| error(format!("cannot find the sshield binary itself: {e}")))?;
    let wanted = Wanted {
        mode: args.mode,
        first_factor: args.first_factor,
        module: args.module.clone(),
        config: config_path.to_owned(),
        config_is_default: config_path == Path::new(DEFAULT_CONFIG_PATH),
        sshield_binary,
    };
    let plan_err = |e: plan::PlanError| Failure::Error(e.0);

    let sshd_text = files::read_optional(&args.sshd_config)
        .map_err(error)?
        .ok_or_else(|| {
            error(format!(
                "{} does not exist; is openssh-server installed? (apt install openssh-server, or pass --sshd-config PATH)",
                args.sshd_config.display()
            ))
        })?;
    let mut changes = Vec::new();
    match plan::include_dir(&sshd_text, &args.sshd_config) {
        Some(dir) => {
            let path = dir.join(plan::DROP_IN_NAME);
            changes.push(Change {
                before: files::read_optional(&path).map_err(error)?,
                after: Some(plan::drop_in(&wanted).map_err(plan_err)?),
                path,
            });
            // A block an earlier setup put into sshd_config itself goes.
            changes.push(Change {
                path: args.sshd_config.clone(),
                after: Some(plan::sshd_config_without_block(&sshd_text)),
                before: Some(sshd_text),
            });
        }
        None => changes.push(Change {
            path: args.sshd_config.clone(),
            after: Some(plan::sshd_config_with_block(&sshd_text, &wanted).map_err(plan_err)?),
            before: Some(sshd_text),
        }),
    }

    let pam_text = files::read_optional(&args.pam_service).map_err(error)?;
    match (&pam_text, args.mode) {
        (Some(text), _) => changes.push(Change {
            path: args.pam_service.clone(),
            after: Some(plan::pam_service(text, &args.pam_service, &wanted).map_err(plan_err)?),
            before: pam_text.clone(),
        }),
        (None, SetupMode::Pam) => {
            return Err(error(format!(
                "{} does not exist: sshd's PAM service file is needed to add the module (pass --pam-service PATH)",
                args.pam_service.display()
            )))
        }
        (None, SetupMode::Forcecommand) => {}
    }

    let config_before = files::read_optional(config_path).map_err(error)?;
    let edits = PolicyEdits {
        exempt_networks: (!args.exempt.is_empty()).then(|| args.exempt.clone()),
        require_groups: (!args.group.is_empty()).then(|| args.group.clone()),
        failmode: args.failmode.map(|f| match f {
            FailmodeArg::Secure => "secure",
            FailmodeArg::Safe => "safe",
        }),
        unenrolled: args.unenrolled.map(|u| match u {
            UnenrolledArg::Deny => "deny",
            UnenrolledArg::Allow => "allow",
        }),
        allow_until: args.allow_until.clone(),
    };
    let config_text =
        plan::sshield_config(config_before.as_deref(), config_path, &edits).map_err(plan_err)?;
    // The config goes first: once PAM or sshd points at it, it must already be right.
    changes.insert(
        0,
        Change {
            path: config_path.to_owned(),
            before: config_before,
            after: Some(config_text.clone()),
        },
    );
    Ok(Planned {
        sshd_lines: plan::sshd_lines(&wanted).map_err(plan_err)?,
        wanted,
        changes,
        config_text,
    })
}

fn apply(config_path: &Path, args: &SetupArgs) -> Result<(), Failure> {
    let state = State::open(&args.state_dir).map_err(Failure::Error)?;
    let last = state.load().map_err(Failure::Error)?;
    if let Some(last) = &last {
        if last.status == Status::Trial {
            return Err(Failure::Refused(format!(
                "a trial is running until {} ({}): confirm it (sshield setup --confirm, from a new ssh session) or undo it (sshield setup --undo) first",
                clock(last.deadline),
                last.summary
            )));
        }
    }
    let planned = plan(config_path, args)?;
    let summary = plan::describe(&planned.wanted).to_owned();
    let changes: Vec<Change> = planned
        .changes
        .iter()
        .filter(|c| !c.is_noop())
        .cloned()
        .collect();
    if changes.is_empty() {
        println!("Nothing to change: this host already has this setup ({summary}).");
        return Ok(());
    }
    println!("sshield setup: {summary}\n");
    for change in &changes {
        print!("{}", files::diff(change));
    }
    println!();

    // Checks that need no change on disk.
    if args.mode == SetupMode::Pam && host::module_path(&args.module).is_none() {
        return Err(Failure::Error(format!(
            "the PAM module {} is not installed (apt install ./sshield_*.deb installs it into the security dir), or pass --module /full/path/pam_sshield.so",
            args.module
        )));
    }
    let config = Config::parse(&planned.config_text, config_path)?;
    let admin = admin_name(args)?;
    let admin_note = check_admin(&config, &admin, args)?;
    if let Some(note) = &admin_note {
        println!("{note}");
    }
    if args.mode == SetupMode::Forcecommand && !config.socket.exists() {
        return Err(Failure::Refused(format!(
            "ForceCommand mode needs `sshield daemon`, but its socket {} does not exist: start it first (systemctl enable --now sshield.socket)",
            config.socket.display()
        )));
    }
    if args.dry_run {
        println!("Dry run: checked, and nothing was changed.");
        return Ok(());
    }

    // Back up, write, check, reload.
    let id = format!("{}-{}", state::now(), std::process::id());
    let backups = state.backups(&id);
    let saved = files::back_up(&changes, &backups).map_err(Failure::Error)?;
    let reload = Reload::choose(args.reload_command.as_deref());
    let mut written = Vec::new();
    let mut notes = Vec::new();
    let mut pid_file = None;
    let result = (|| {
        for (change, saved) in changes.iter().zip(&saved) {
            files::apply(change, saved)?;
            written.push(saved.clone());
        }
        host::sshd_test(&args.sshd_binary, &args.sshd_config)?;
        match host::sshd_effective(&args.sshd_binary, &args.sshd_config) {
            Ok(effective) => {
                pid_file = effective
                    .get("pidfile")
                    .filter(|p| p.as_str() != "none")
                    .map(PathBuf::from);
                root_can_answer(&admin, args.mode, &effective)?;
                notes.extend(root_locked_out(args.mode, &effective));
                let lost = host::overridden(&planned.sshd_lines, &effective);
                if !lost.is_empty() {
                    let list: Vec<String> = lost
                        .iter()
                        .map(|(line, actual)| format!("`{line}` (sshd uses `{actual}`)"))
                        .collect();
                    let keyword = lost[0].1.split(' ').next().unwrap_or_default();
                    let mut places = args.sshd_config.display().to_string();
                    if let Some(dir) = planned
                        .changes
                        .iter()
                        .find(|c| c.path.ends_with(plan::DROP_IN_NAME))
                        .and_then(|c| c.path.parent())
                    {
                        places.push_str(&format!(" {}", dir.display()));
                    }
                    return Err(format!(
                        "sshd does not take {}: a file it reads first sets the same keyword (sshd keeps the first value). Find it with: grep -ri '^ *{keyword}' {places}",
                        list.join(", "),
                    ));
                }
            }
            Err(why) => {
                println!("note: could not read sshd's effective config ({why}); relying on sshd -t")
            }
        }
        reload.run()
    })();
    if let Err(why) = result {
        let mut problems = Vec::new();
        for s in written.iter().rev() {
            if let Err(e) = files::restore(s, &backups) {
                problems.push(e);
            }
        }
        // sshd may have been reloaded before the failure was noticed; reloading again with the
        // old files is harmless otherwise.
        let _ = reload.run();
        state.log(&format!("apply {id} failed and was put back: {why}"));
        let mut message = format!("{why}\nEvery file was put back; nothing changed.");
        if !problems.is_empty() {
            message = format!(
                "{why}\nPUTTING FILES BACK FAILED: {}. The backups are in {}.",
                problems.join("; "),
                backups.display()
            );
        }
        return Err(Failure::Error(message));
    }

    // The trial.
    let me = Proc::read(std::process::id());
    let mut change = state::Change {
        id: id.clone(),
        status: Status::Trial,
        summary: summary.clone(),
        applied_at: state::now(),
        setup_started_ticks: me.as_ref().map_or(0, |p| p.start_ticks),
        deadline: state::now() + args.try_seconds,
        admin: admin.clone(),
        setup_session: procs::ssh_session_of(std::process::id()).map(|s| SessionMark {
            pid: s.session.pid,
            start_ticks: s.session.start_ticks,
        }),
        watcher_pid: None,
        watcher_start_ticks: None,
        boot_guard: None,
        config: config_path.to_owned(),
        sshd_binary: args.sshd_binary.clone(),
        sshd_config: args.sshd_config.clone(),
        sshd_pid_file: pid_file.or_else(|| match &reload {
            Reload::Hup(path) => Some(path.clone()),
            _ => None,
        }),
        reload_command: None,
        reload_hup_pid_file: None,
        files: saved,
        // Written over what is still in force of earlier setups, which `--undo` must also reach.
        earlier: last.map(state::Change::into_earlier).unwrap_or_default(),
    };
    change.set_reload(&reload);
    state.save(&change).map_err(Failure::Error)?;
    if let Some(dir) = unit_dir(args) {
        match install_boot_guard(&dir, config_path, &args.state_dir) {
            Ok(guard) => change.boot_guard = Some(guard),
            Err(why) => notes.push(format!(
                "note: no boot guard ({why}): if the machine restarts before the trial ends, run {} from its console",
                command_line(config_path, args, "--undo")
            )),
        }
        state.save(&change).map_err(Failure::Error)?;
    }
    let watcher = start_watcher(config_path, &args.state_dir);
    match watcher {
        Ok(pid) => {
            change.watcher_pid = Some(pid);
            change.watcher_start_ticks = Proc::read(pid).map(|p| p.start_ticks);
            state.save(&change).map_err(Failure::Error)?;
        }
        Err(why) => {
            // Without a watcher nobody undoes the trial: undo it now.
            roll_back(&state, &mut change, Status::RolledBack);
            return Err(Failure::Error(format!(
                "cannot start the trial's watcher ({why}); the old files were put back"
            )));
        }
    }
    let line = format!(
        "applied {id}: {summary}; trial until {} (admin {admin})",
        clock(change.deadline)
    );
    state.log(&line);
    syslog::send(
        Path::new(syslog::DEV_LOG),
        Severity::Warning,
        &format!("setup: {line}"),
    );

    for note in &notes {
        println!("{note}");
    }
    let confirm = command_line(config_path, args, "--confirm");
    println!(
        "Applied, checked with `{} -t`, and sshd reloaded ({}).\n",
        args.sshd_binary.display(),
        reload.describe()
    );
    println!(
        "TRIAL: unless confirmed by {} (in {} s), the old files come back by themselves.",
        clock(change.deadline),
        args.try_seconds
    );
    println!("  1. Keep this session open.");
    println!("  2. In a NEW terminal, log in again as {admin}: you will be asked for a code.");
    println!("  3. There, run: {confirm}");
    println!(
        "If the new login fails, do nothing: the old setup returns. To put it back now: {}",
        command_line(config_path, args, "--undo")
    );
    Ok(())
}

/// sshd answers root's keyboard-interactive prompts itself, with a wrong password, unless
/// `PermitRootLogin yes` (OpenSSH's auth-pam.c): a root admin could never type the code.
fn root_can_answer(
    admin: &str,
    mode: SetupMode,
    effective: &crate::commands::doctor::sshd::Settings,
) -> Result<(), String> {
    let permit = effective
        .get("permitrootlogin")
        .map_or("prohibit-password", String::as_str);
    if mode == SetupMode::Pam && admin == "root" && permit != "yes" {
        return Err(format!(
            "the admin is root, but PermitRootLogin is `{permit}`: sshd then answers root's code prompt itself with a wrong password, so root could not log in. Name an admin who logs in as themselves and uses sudo (--admin NAME), or set PermitRootLogin yes (the key or password is still asked first)"
        ));
    }
    Ok(())
}

/// In PAM mode, with PermitRootLogin `prohibit-password` (Debian's default), root may log in
/// but can never answer the code prompt (see [`root_can_answer`]): say so, with doctor's own
/// check (`sshd-root-kbd-interactive`), so the two never disagree.
fn root_locked_out(
    mode: SetupMode,
    effective: &crate::commands::doctor::sshd::Settings,
) -> Option<String> {
    use crate::commands::doctor::sshd::{check_root_kbd_interactive, SshdConfig};
    if mode != SetupMode::Pam {
        return None;
    }
    let config = SshdConfig {
        global: effective.clone(),
        blocks: Vec::new(),
    };
    check_root_kbd_interactive(&config)
        .first()
        .map(|f| format!("note: {} — {}", f.message, f.fix))
}

/// `sshield [--config C] setup FLAG [--state-dir D]`, as the admin must type it.
fn command_line(config_path: &Path, args: &SetupArgs, flag: &str) -> String {
    let mut line = String::from("sshield");
    if !rustix::process::getuid().is_root() || std::env::var_os("SUDO_USER").is_some() {
        line = format!("sudo {line}");
    }
    if config_path != Path::new(DEFAULT_CONFIG_PATH) {
        line.push_str(&format!(" --config {}", config_path.display()));
    }
    line.push_str(&format!(" setup {flag}"));
    if args.state_dir != Path::new("/var/lib/sshield/setup") {
        line.push_str(&format!(" --state-dir {}", args.state_dir.display()));
    }
    line
}

/// The admin whose access setup protects.
fn admin_name(args: &SetupArgs) -> Result<String, Failure> {
    if let Some(name) = &args.admin {
        return Ok(name.clone());
    }
    if let Some(name) = std::env::var("SUDO_USER").ok().filter(|n| !n.is_empty()) {
        return Ok(name);
    }
    let uid = procs::ssh_session_of(std::process::id())
        .map(|s| s.session.uid)
        .unwrap_or_else(|| rustix::process::getuid().as_raw());
    user_of(uid).ok_or_else(|| {
        Failure::Error(format!(
            "uid {uid} has no user name; say who the admin is with --admin NAME"
        ))
    })
}

fn user_of(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// Refuses when the new setup would ask `admin` for a code they cannot give. Returns a note to
/// print when setup may go on but the admin should know something.
fn check_admin(config: &Config, admin: &str, args: &SetupArgs) -> Result<Option<String>, Failure> {
    let engine = Engine::new(config);
    let service = match args.mode {
        SetupMode::Pam => "sshd",
        SetupMode::Forcecommand => "sshield-login",
    };
    let subject = Caller::new(Account::resolve(admin), service);
    if let Requirement::Exempt(why) = engine.requirement(&subject, UnixTime::now()) {
        return Ok(Some(format!(
            "note: the admin {admin} will not be asked for a code (exempt: {}); confirming the trial needs a login that passed one",
            why.as_str()
        )));
    }
    let store = config.record_store();
    let state = UserName::new(admin)
        .map_err(|e| e.to_string())
        .and_then(|u| store.load(&u).map_err(|e| e.to_string()))
        .map(|r| r.map(|r| r.state()));
    let problem = match state {
        Ok(Some(UserState::Active)) => return Ok(None),
        Ok(Some(UserState::Pending)) => format!(
            "{admin}'s enrollment is still pending: confirm it with a first code (sshield confirm {admin} CODE)"
        ),
        Ok(Some(UserState::Disabled)) => {
            format!("{admin}'s record is disabled (sshield enable {admin})")
        }
        Ok(None) => format!("{admin} is not enrolled: run sshield enroll {admin} and scan the QR code"),
        Err(e) => format!("{admin}'s record cannot be read: {e}"),
    };
    if args.allow_unenrolled_admin {
        return Ok(Some(format!(
            "warning: {problem}. Going on because of --allow-unenrolled-admin: make sure {admin} has another way in."
        )));
    }
    Err(Failure::Refused(format!(
        "the new setup would ask {admin} for a code, but {problem}. (Or pass --allow-unenrolled-admin if {admin} has another way in; --admin NAME names a different admin.)"
    )))
}

/// Starts `sshield setup --watch-trial` in the background, detached from this terminal.
fn start_watcher(config_path: &Path, state_dir: &Path) -> Result<u32, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let child = Command::new(exe)
        .arg("--config")
        .arg(config_path)
        .arg("setup")
        .arg("--watch-trial")
        .arg("--state-dir")
        .arg(state_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    Ok(child.id())
}

/// The watcher: waits for the deadline, and puts the old files back unless the trial was
/// confirmed or undone meanwhile.
fn watch(state_dir: &Path) -> Result<(), Failure> {
    // Its own session: the admin's ssh connection closing (SIGHUP to the terminal's
    // process group) must not take the watcher with it.
    let _ = rustix::process::setsid();
    let me = std::process::id();
    loop {
        std::thread::sleep(WATCH_EVERY);
        let state = State::open(state_dir).map_err(Failure::Error)?;
        let Some(mut change) = state.load().map_err(Failure::Error)? else {
            return Ok(());
        };
        if change.status != Status::Trial {
            return Ok(());
        }
        if change.watcher_pid != Some(me) {
            // Another watcher's trial, unless that one is gone: killed, or the machine
            // restarted and the boot guard started this one. Then this one takes over.
            let other_alive = change.watcher_pid.and_then(Proc::read).is_some_and(|p| {
                change
                    .watcher_start_ticks
                    .is_none_or(|t| t == p.start_ticks)
            });
            if other_alive {
                return Ok(());
            }
            change.watcher_pid = Some(me);
            change.watcher_start_ticks = Proc::read(me).map(|p| p.start_ticks);
            state.save(&change).map_err(Failure::Error)?;
            state.log(&format!("watcher {me} took over the trial {}", change.id));
        }
        if state::now() >= change.deadline {
            let problems = roll_back(&state, &mut change, Status::RolledBack);
            log_rollback(&state, &change, &problems);
            return Ok(());
        }
    }
}

/// The boot guard's command (`--boot-guard`), run by its unit before sshd starts. A trial
/// past its deadline is undone here and now, before this returns: sshd then starts with the
/// old files and never serves the expired trial's (issue 9: a `Type=simple` guard that ran
/// the watcher let sshd start with them, and undid them a moment later). A trial still
/// running gets a watcher in the background, and the boot goes on.
fn boot_guard(config_path: &Path, state_dir: &Path) -> Result<(), Failure> {
    let state = State::open(state_dir).map_err(Failure::Error)?;
    let Some(mut change) = state.load().map_err(Failure::Error)? else {
        return Ok(());
    };
    if change.status != Status::Trial {
        return Ok(());
    }
    let mut problems = Vec::new();
    if state::now() < change.deadline {
        match start_watcher(config_path, state_dir) {
            // It finds the old watcher gone, and takes the trial over.
            Ok(_) => return Ok(()),
            // Nobody would undo the trial: undo it now, as apply does.
            Err(why) => problems.push(format!("cannot start the trial's watcher ({why})")),
        }
    }
    // sshd has not started (the unit is ordered before ssh.service), so putting the files
    // back is all it takes: `systemctl reload ssh` now would wait for ssh's start job, which
    // waits for this unit, and `sshd -t` fails for want of /run/sshd, which ssh.service makes
    // (its own ExecStartPre checks the files a moment later).
    problems.extend(restore_files(&state, &[&change]));
    change.status = Status::RolledBack;
    if let Err(e) = state.save(&change) {
        problems.push(e);
    }
    log_rollback(&state, &change, &problems);
    // Only now: the daemon-reload drops this unit's ordering before ssh.service.
    remove_boot_guard(&mut change);
    state.save(&change).map_err(Failure::Error)
}

/// The line for the setup log and syslog when a trial ran out.
fn log_rollback(state: &State, change: &state::Change, problems: &[String]) {
    let line = if problems.is_empty() {
        format!(
            "rolled back {}: not confirmed by {}",
            change.id,
            clock(change.deadline)
        )
    } else {
        format!(
            "ROLLBACK OF {} INCOMPLETE: {}",
            change.id,
            problems.join("; ")
        )
    };
    state.log(&line);
    syslog::send(
        Path::new(syslog::DEV_LOG),
        Severity::Warning,
        &format!("setup: {line}"),
    );
}

/// Puts every file of `change` back and reloads sshd; returns what went wrong. The changes
/// beneath it stay in force.
fn roll_back(state: &State, change: &mut state::Change, status: Status) -> Vec<String> {
    let mut problems = put_back(state, &[&*change]);
    change.status = status;
    remove_boot_guard(change);
    if let Err(e) = state.save(change) {
        problems.push(e);
    }
    problems
}

/// Puts back the files of `layers`, newest first (each layer's old text is what the one
/// before it wrote), then checks the result with `sshd -t` and reloads sshd once, as the
/// newest layer says; returns what went wrong.
fn put_back(state: &State, layers: &[&state::Change]) -> Vec<String> {
    let mut problems = restore_files(state, layers);
    if let Some(newest) = layers.first() {
        if let Err(e) = host::sshd_test(&newest.sshd_binary, &newest.sshd_config) {
            problems.push(e);
        }
        if let Err(e) = newest.reload().run() {
            problems.push(e);
        }
    }
    problems
}

/// Puts back the files of `layers`, newest first, and nothing else; returns what went wrong.
fn restore_files(state: &State, layers: &[&state::Change]) -> Vec<String> {
    let mut problems = Vec::new();
    for layer in layers {
        let backups = state.backups(&layer.id);
        for saved in layer.files.iter().rev() {
            if let Err(e) = files::restore(saved, &backups) {
                problems.push(e);
            }
        }
    }
    problems
}

/// The boot guard's unit name.
const GUARD_UNIT: &str = "sshield-setup-trial.service";

/// Where the admin's system units go.
const SYSTEM_UNIT_DIR: &str = "/etc/systemd/system";

/// Exists while systemd is the init system (sd_booted(3)).
const SYSTEMD_RUNNING: &str = "/run/systemd/system";

/// `--systemd-unit-dir`, else /etc/systemd/system where systemd is running.
fn unit_dir(args: &SetupArgs) -> Option<PathBuf> {
    args.systemd_unit_dir.clone().or_else(|| {
        Path::new(SYSTEMD_RUNNING)
            .is_dir()
            .then(|| PathBuf::from(SYSTEM_UNIT_DIR))
    })
}

/// Writes and enables (by its `multi-user.target.wants` link, which systemd reads at boot) a
/// unit that runs [`boot_guard`]: after a restart during the trial it undoes the trial before
/// sshd starts if the deadline has passed, or starts a watcher that waits for it. Removed
/// when the trial ends, however it ends.
///
/// `Type=oneshot`: systemd starts ssh.service only once the command has returned, so an
/// expired trial is undone first; `RemainAfterExit=yes` keeps the unit active, and with it the
/// watcher the command leaves running (a oneshot unit that goes inactive has its remaining
/// processes killed). The command returns at once while the trial runs: boot is not held up.
fn install_boot_guard(
    dir: &Path,
    config_path: &Path,
    state_dir: &Path,
) -> Result<state::BootGuard, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let unit = dir.join(GUARD_UNIT);
    let wants = dir.join("multi-user.target.wants");
    let link = wants.join(GUARD_UNIT);
    let quote = |p: &Path| {
        format!(
            "\"{}\"",
            p.display()
                .to_string()
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                // systemd expands %-specifiers in ExecStart.
                .replace('%', "%%")
        )
    };
    let text = format!(
        "# Written by `sshield setup` for its trial {}; removed when the trial ends.\n\
[Unit]\n\
Description=Undo an unconfirmed sshield setup trial after a restart\n\
After=local-fs.target\n\
Before=ssh.service\n\n\
[Service]\n\
Type=oneshot\n\
RemainAfterExit=yes\n\
ExecStart={} --config {} setup --boot-guard --state-dir {}\n\n\
[Install]\n\
WantedBy=multi-user.target\n",
        state_dir.display(),
        quote(&exe),
        quote(config_path),
        quote(state_dir)
    );
    let io =
        |what: &str, p: &Path, e: std::io::Error| format!("cannot {what} {}: {e}", p.display());
    std::fs::create_dir_all(&wants).map_err(|e| io("create", &wants, e))?;
    std::fs::write(&unit, text).map_err(|e| io("write", &unit, e))?;
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(Path::new("..").join(GUARD_UNIT), &link)
        .map_err(|e| io("link", &link, e))?;
    reload_units(dir);
    Ok(state::BootGuard { unit, link })
}

fn remove_boot_guard(change: &mut state::Change) {
    if let Some(guard) = change.boot_guard.take() {
        let _ = std::fs::remove_file(&guard.link);
        let _ = std::fs::remove_file(&guard.unit);
        if let Some(dir) = guard.unit.parent() {
            reload_units(dir);
        }
    }
}

/// `systemctl daemon-reload` after the guard came or went in the unit dir of the running
/// systemd: without it systemd goes on with its old idea of the unit and of what
/// multi-user.target wants, and says the unit file changed on disk (issue 9). Never for
/// another `--systemd-unit-dir` (the tests').
fn reload_units(dir: &Path) {
    if dir == Path::new(SYSTEM_UNIT_DIR) && Path::new(SYSTEMD_RUNNING).is_dir() {
        let _ = Command::new("systemctl")
            .arg("daemon-reload")
            .stdin(Stdio::null())
            .status();
    }
}

fn confirm(args: &SetupArgs) -> Result<(), Failure> {
    let state = State::open(&args.state_dir).map_err(Failure::Error)?;
    let mut change = match state.load().map_err(Failure::Error)? {
        Some(c) if c.status == Status::Trial => c,
        Some(c) => {
            return Err(Failure::Refused(format!(
                "no trial is running: the last setup ({}) is {}",
                c.summary,
                c.status.as_str()
            )))
        }
        None => {
            return Err(Failure::Refused(
                "no trial is running: setup has made no change here".into(),
            ))
        }
    };
    if state::now() >= change.deadline {
        return Err(Failure::Refused(format!(
            "too late: the trial ended at {}, and the old files are being put back",
            clock(change.deadline)
        )));
    }
    let Some(ssh) = procs::ssh_session_of(std::process::id()) else {
        return Err(Failure::Refused(
            "run --confirm from a new ssh session: log in again in another terminal, so that the login itself shows the new setup works".into(),
        ));
    };
    let mark = SessionMark {
        pid: ssh.session.pid,
        start_ticks: ssh.session.start_ticks,
    };
    if change.setup_session == Some(mark) || mark.start_ticks < change.setup_started_ticks {
        return Err(Failure::Refused(
            "this ssh session began before the trial, so it proves nothing about the new setup: log in again in a NEW terminal and confirm from there".into(),
        ));
    }
    // Through the sshd setup reconfigured: the process sshd forked for this connection is a
    // child of that sshd's listener. That is the monitor (`sshd: USER [priv]`), or for root,
    // whom OpenSSH serves without an unprivileged child, the session's sshd itself. A login
    // through another sshd on the host proves nothing about this one's new config.
    let listener = listener_of(&change).map_err(Failure::Refused)?;
    let connection = std::iter::once(&ssh.session)
        .chain(ssh.monitor.as_ref())
        .find(|p| p.ppid == listener.pid);
    let Some(connection) = connection else {
        return Err(Failure::Refused(format!(
            "this ssh session did not come through the sshd that setup reconfigured (its listener is pid {}, from {}): log in through that sshd in a NEW terminal and confirm from there",
            listener.pid,
            change
                .sshd_pid_file
                .as_deref()
                .unwrap_or(Path::new("?"))
                .display()
        )));
    };
    let user = user_of(ssh.session.uid).ok_or_else(|| {
        Failure::Error(format!(
            "uid {} of this session has no name",
            ssh.session.uid
        ))
    })?;
    // And this session's own login passed the second factor: the marker the module (or the
    // daemon) left names that process, or the one it forked to talk to PAM. `sshield verify`, or a
    // login elsewhere, moves the record's last success but leaves no such marker.
    let config = Config::load(&change.config)?;
    let store = config.record_store();
    let passed = match UserName::new(&user) {
        Ok(name) => passed::load(&store, &name).map_err(|e| Failure::Error(e.to_string()))?,
        Err(_) => None,
    };
    let by_this_session = passed.is_some_and(|p| {
        p.at >= change.applied_at && (p.pid == connection.pid || p.parent == connection.pid)
    });
    if !by_this_session {
        return Err(Failure::Refused(format!(
            "this session's login did not pass {user}'s second factor since the trial began (was it exempt? a code checked by `sshield verify`, or by another login, proves nothing about the new setup): log in again in a NEW terminal, so that the new setup asks for a code, and confirm from that session"
        )));
    }
    change.status = Status::Confirmed;
    remove_boot_guard(&mut change);
    state.save(&change).map_err(Failure::Error)?;
    let line = format!("confirmed {} by {user} from a new session", change.id);
    state.log(&line);
    syslog::send(
        Path::new(syslog::DEV_LOG),
        Severity::Warning,
        &format!("setup: {line}"),
    );
    println!(
        "Confirmed: the new setup stays ({}). `sshield setup --undo` still puts the old files back; backups are in {}.",
        change.summary,
        state.backups(&change.id).display()
    );
    Ok(())
}

/// The listener of the sshd setup reconfigured, from the pid file it writes.
fn listener_of(change: &state::Change) -> Result<Proc, String> {
    let Some(path) = &change.sshd_pid_file else {
        return Err(format!(
            "sshd's config ({}) names no PidFile, so setup cannot tell which sshd this session came through: set one (PidFile /run/sshd.pid), or undo the trial (sshield setup --undo)",
            change.sshd_config.display()
        ));
    };
    let pid = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read sshd's pid file {}: {e}", path.display()))?
        .trim()
        .parse::<u32>()
        .map_err(|e| format!("{} holds no pid ({e})", path.display()))?;
    Proc::read(pid)
        .filter(|p| p.is_sshd() && p.uid == 0)
        .ok_or_else(|| {
            format!(
                "pid {pid} (from {}) is not a running sshd of root's: is sshd running?",
                path.display()
            )
        })
}

/// Puts back every change still in force, newest first: the last one if it is applied, and
/// the earlier ones beneath it, so the host is as it was before the first of them.
fn undo(args: &SetupArgs) -> Result<(), Failure> {
    let state = State::open(&args.state_dir).map_err(Failure::Error)?;
    let Some(mut change) = state.load().map_err(Failure::Error)? else {
        return Err(Failure::Refused(
            "nothing to undo: setup has made no change here".into(),
        ));
    };
    let layers = change.in_force();
    if layers.is_empty() {
        return Err(Failure::Refused(format!(
            "nothing to undo: the last setup ({}) was already {}",
            change.summary,
            change.status.as_str()
        )));
    }
    // A hand edit shows against the newest layer that wrote the file.
    let mut seen: Vec<&Path> = Vec::new();
    for layer in &layers {
        let backups = state.backups(&layer.id);
        for saved in &layer.files {
            if seen.contains(&saved.path.as_path()) {
                continue;
            }
            seen.push(&saved.path);
            if !files::unchanged_since(saved, &backups) {
                println!(
                    "note: {} was changed after setup wrote it; those changes are undone too (setup's copy: {}/{}.new)",
                    saved.path.display(),
                    backups.display(),
                    saved.slot
                );
            }
        }
    }
    // Each file ends as the oldest layer that touched it found it.
    let mut outcome: Vec<(PathBuf, bool)> = Vec::new();
    for layer in layers.iter().rev() {
        for saved in &layer.files {
            if !outcome.iter().any(|(p, _)| *p == saved.path) {
                outcome.push((saved.path.clone(), saved.existed));
            }
        }
    }
    let ids: Vec<String> = layers.iter().map(|l| l.id.clone()).collect();
    let reload = layers[0].reload().describe();
    let mut problems = put_back(&state, &layers);
    if change.status.is_applied() {
        change.status = Status::Undone;
        remove_boot_guard(&mut change);
    }
    change.earlier.clear();
    if let Err(e) = state.save(&change) {
        problems.push(e);
    }
    if !problems.is_empty() {
        let line = format!(
            "UNDO OF {} INCOMPLETE: {}",
            ids.join(", "),
            problems.join("; ")
        );
        state.log(&line);
        return Err(Failure::Error(format!(
            "{line}. The backups are in {}",
            state.backups("").display()
        )));
    }
    state.log(&format!("undone {}", ids.join(", ")));
    for (path, existed) in &outcome {
        let what = if *existed { "restored" } else { "removed" };
        println!("{what} {}", path.display());
    }
    let which = match ids.as_slice() {
        [one] => format!("that setup ({one})"),
        [newest, .., oldest] => format!("the {} setups from {oldest} to {newest}", ids.len()),
        [] => String::new(),
    };
    println!("sshd reloaded ({reload}). The host is as it was before {which}.");
    Ok(())
}

#[derive(Serialize)]
struct StatusReport<'a> {
    #[serde(flatten)]
    change: &'a state::Change,
    watcher_running: bool,
    seconds_left: Option<u64>,
    changed_since: Vec<PathBuf>,
}

fn status(args: &SetupArgs) -> Result<(), Failure> {
    let state = State::open(&args.state_dir).map_err(Failure::Error)?;
    let Some(change) = state.load().map_err(Failure::Error)? else {
        if args.json {
            println!("null");
        } else {
            println!(
                "setup has made no change here ({}).",
                args.state_dir.display()
            );
        }
        return Ok(());
    };
    let backups = state.backups(&change.id);
    let report = StatusReport {
        watcher_running: change
            .watcher_pid
            .and_then(Proc::read)
            .is_some_and(|p| p.exe.starts_with("sshield")),
        seconds_left: (change.status == Status::Trial)
            .then(|| change.deadline.saturating_sub(state::now())),
        changed_since: change
            .files
            .iter()
            .filter(|s| change.status.is_applied() && !files::unchanged_since(s, &backups))
            .map(|s| s.path.clone())
            .collect(),
        change: &change,
    };
    if args.json {
        let text = serde_json::to_string_pretty(&report).map_err(Failure::error)?;
        println!("{text}");
        return Ok(());
    }
    println!("last setup: {} ({})", change.summary, change.id);
    println!("applied:    {}", clock(change.applied_at));
    match report.seconds_left {
        Some(left) => println!(
            "status:     TRIAL, undone at {} (in {left} s) unless confirmed; watcher {}",
            clock(change.deadline),
            if report.watcher_running {
                "running"
            } else {
                "NOT RUNNING: run sshield setup --undo or --confirm"
            }
        ),
        None => println!("status:     {}", change.status.as_str()),
    }
    for earlier in change.earlier.iter().rev() {
        println!(
            "beneath:    {} ({}, {}; `--undo` puts it back too)",
            earlier.summary,
            earlier.id,
            earlier.status.as_str()
        );
    }
    for saved in &change.files {
        let note = if report.changed_since.contains(&saved.path) {
            "  (changed since)"
        } else {
            ""
        };
        println!("file:       {}{note}", saved.path.display());
    }
    println!("backups:    {}", backups.display());
    let tail = state.log_tail(5);
    if !tail.is_empty() && std::io::stdout().is_terminal() {
        println!("log:");
        for line in tail {
            println!("  {line}");
        }
    }
    Ok(())
}

/// A Unix time as `YYYY-MM-DD HH:MM:SS UTC`.
fn clock(secs: u64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_secs(secs);
    format!("{} UTC", humantime::format_rfc3339_seconds(t))
        .replacen('T', " ", 1)
        .replacen("Z UTC", " UTC", 1)
}
