//! The `herold` command line: serve (default), migrate, tenant and admin
//! creation, VAPID key display, SQLite backup, town export/import. Errors print one line and
//! exit non-zero.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use clap::{Parser, Subcommand};
use diesel::Connection;

use crate::config::Config;
use crate::state::{AppState, Clock};
use crate::{accounts, auth, db, tenants, validate};

#[derive(Parser, Debug)]
#[command(name = "herold", version, about = "Local broadcast groups for towns, delivered by Web Push")]
pub struct Cli {
    /// Optional TOML file with the same keys as the environment variables
    /// (without the HEROLD_ prefix, lower case). The environment wins.
    #[arg(long, global = true, env = "HEROLD_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage tenants (towns).
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manage city admins and operators.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// The installation's VAPID key pair.
    Vapid {
        #[command(subcommand)]
        command: VapidCommand,
    },
    /// Write a consistent copy of the SQLite database to FILE while the
    /// server runs (PostgreSQL: use pg_dump). FILE must not exist.
    Backup {
        /// Where the copy goes, e.g. /var/backups/herold/herold-2026-11-26.db
        file: PathBuf,
    },
    /// Write one town (tenant) as JSON Lines, to move it to another
    /// installation with `herold import` (see README, "Moving a town").
    Export {
        /// The tenant's slug.
        #[arg(long)]
        tenant: String,
        /// A new file to write (readable by its owner only); default stdout.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Include the VAPID private key and the pseudonym key, so an
        /// installation without devices can take them over: the town's
        /// devices keep receiving pushes and residents keep their pseudonyms.
        #[arg(long)]
        with_keys: bool,
    },
    /// Read a town written by `herold export`, in one transaction; refuses
    /// a town that exists here already.
    Import {
        /// The export file; default stdin.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Leave the residents' devices and subscriptions behind (when the
        /// VAPID keys differ and cannot be moved); residents subscribe again.
        /// What the devices owned (issue reports, votes, blocks, questions
        /// not answered publicly) stays behind with them.
        #[arg(long)]
        without_devices: bool,
    },
    /// Copy everything from one database into a new, empty one (e.g. SQLite
    /// to PostgreSQL) and verify the row counts. Stop the server first.
    MigrateDb {
        /// The database to copy, e.g. sqlite:///var/lib/herold/herold.db
        #[arg(long)]
        from: String,
        /// The empty database to fill, e.g. postgres://herold@db/herold
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Short name used in URLs: a–z, 0–9, '-'.
        #[arg(long)]
        slug: String,
        /// Display name, e.g. "Hansestadt Wismar".
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Create a city admin of a tenant (or an operator with --platform).
    /// The password is read from standard input when it is not a terminal,
    /// else prompted for.
    Create {
        /// The tenant's slug (not with --platform).
        #[arg(long, required_unless_present = "platform", conflicts_with = "platform")]
        tenant: Option<String>,
        #[arg(long)]
        email: String,
        /// An operator who may act as city admin in every tenant.
        #[arg(long)]
        platform: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum VapidCommand {
    /// Print the VAPID public key (base64url).
    Show,
}

fn open(cli: &Cli) -> anyhow::Result<AppState> {
    let config = Config::load(cli.config.as_deref())?;
    AppState::open(config, Clock::system()).map_err(|e| anyhow!(e))
}

fn read_password(email: &str) -> anyhow::Result<String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("Password for {email}: "))?;
        let again = rpassword::prompt_password("Repeat the password: ")?;
        if first != again {
            bail!("the passwords differ");
        }
        first
    } else {
        let mut input = String::new();
        std::io::stdin().read_to_string(&mut input).context("reading the password from standard input")?;
        input.lines().next().unwrap_or_default().to_owned()
    };
    validate::password(&password).map_err(|e| anyhow!(e.to_string()))?;
    Ok(password)
}

/// Runs a command other than `serve`.
pub fn run(cli: &Cli, command: &Command) -> anyhow::Result<()> {
    match command {
        Command::Serve => Err(anyhow!("serve is run by main, not by cli::run")),
        Command::Migrate => {
            let config = Config::load(cli.config.as_deref())?;
            let pool = db::pool(&config.backend, Some(1)).map_err(|e| anyhow!(e))?;
            let mut conn = pool.get().context("connecting to the database")?;
            let n = db::run_migrations(&mut conn).map_err(|e| anyhow!(e))?;
            println!("{n} migration(s) applied");
            Ok(())
        }
        Command::Tenant { command: TenantCommand::Create { slug, name } } => {
            let state = open(cli)?;
            let mut conn = state.pool.get()?;
            let now = state.now_ms();
            let tenant = tenants::create(&mut conn, slug, name, now).map_err(|e| anyhow!(e.to_string()))?;
            println!("tenant '{}' created ({})", tenant.slug, tenant.name);
            Ok(())
        }
        Command::Admin { command: AdminCommand::Create { tenant, email, platform } } => {
            let email = validate::email(email).map_err(|e| anyhow!(e.to_string()))?;
            let state = open(cli)?;
            let mut conn = state.pool.get()?;
            let tenant = match tenant {
                Some(slug) => {
                    Some(tenants::by_slug(&mut conn, slug).map_err(|_| anyhow!("there is no tenant '{slug}'"))?)
                }
                None => None,
            };
            let existing = accounts::by_email(&mut conn, &email).map_err(|e| anyhow!(e.to_string()))?;
            let hash = match &existing {
                Some(user) if user.password_hash.is_some() => None,
                _ => Some(auth::password::hash(&read_password(&email)?).map_err(|e| anyhow!(e))?),
            };
            let now = state.now_ms();
            conn.transaction::<_, anyhow::Error, _>(|c| {
                let user = match existing {
                    Some(user) => {
                        if let Some(hash) = &hash {
                            accounts::set_password(c, &user.id, hash).map_err(|e| anyhow!(e.to_string()))?;
                        }
                        user
                    }
                    None => accounts::create_user(c, &email, hash.as_deref(), false, now)
                        .map_err(|e| anyhow!(e.to_string()))?,
                };
                match &tenant {
                    Some(t) => {
                        accounts::grant_city_admin(c, &t.id, &user.id, now).map_err(|e| anyhow!(e.to_string()))?
                    }
                    None => accounts::grant_platform(c, &user.id).map_err(|e| anyhow!(e.to_string()))?,
                }
                crate::audit::record(
                    c,
                    crate::audit::Entry {
                        tenant_id: tenant.as_ref().map(|t| t.id.as_str()),
                        actor: "operator".into(),
                        action: if *platform { "operator.create" } else { "city_admin.create" },
                        target_type: "user",
                        target_id: &user.id,
                        reason: None,
                    },
                    now,
                )
                .map_err(|e| anyhow!(e.to_string()))
            })?;
            match tenant {
                Some(t) => println!("{email} is city admin of '{}'", t.slug),
                None => println!("{email} is an operator of every tenant"),
            }
            Ok(())
        }
        Command::Backup { file } => backup(cli, file),
        Command::Export { tenant, output, with_keys } => {
            crate::transfer::export_command(cli.config.as_deref(), tenant, output.as_deref(), *with_keys)
        }
        Command::Import { input, without_devices } => {
            crate::transfer::import_command(cli.config.as_deref(), input.as_deref(), *without_devices)
        }
        Command::MigrateDb { from, to } => crate::migrate_db::run(from, to),
        Command::Vapid { command: VapidCommand::Show } => {
            let state = open(cli)?;
            println!("{}", state.keys.vapid.public_key());
            Ok(())
        }
    }
}

/// `herold backup FILE`: SQLite's `VACUUM INTO` on a live database. The
/// database is opened as it is (no migrations: a backup copies, it does not
/// change anything).
fn backup(cli: &Cli, file: &std::path::Path) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    let db::Backend::Sqlite(source) = &config.backend else {
        bail!(
            "backup: DATABASE_URL is PostgreSQL, which has its own online backup: \
             pg_dump -Fc --file={} \"$DATABASE_URL\" (restore with pg_restore; see deploy/README.md)",
            file.display()
        );
    };
    if !std::path::Path::new(source).is_file() {
        bail!("backup: there is no database at {source}");
    }
    // Absolute: SQLite would read a name starting with `file:` as a URI.
    let target = std::path::absolute(file).with_context(|| format!("backup: {}", file.display()))?;
    let target_text = target.to_str().ok_or_else(|| anyhow!("backup: {} is not valid UTF-8", target.display()))?;
    // Created empty first: refuses an existing file without a race, and the
    // copy (keys, push endpoints) is readable by its owner only.
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(&target).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => anyhow!("backup: {} exists already; choose a new file", target.display()),
        _ => anyhow!("backup: cannot create {}: {e}", target.display()),
    })?;
    let copied =
        config.backend.connect().map_err(|e| anyhow!("backup: cannot open {source}: {e}")).and_then(|mut conn| {
            db::dialect::backup_sqlite_into(&mut conn, target_text).map_err(|e| anyhow!("backup: {e}"))
        });
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&target);
        return Err(e);
    }
    let size = std::fs::metadata(&target).map(|m| m.len()).unwrap_or(0);
    println!("backed up {source} to {} ({size} bytes)", target.display());
    Ok(())
}
