//! The `herold` binary: parses the command line, sets up logging, and runs
//! the server or a one-shot command.

use clap::Parser;
use herold::cli::{Cli, Command};
use herold::{AppState, Clock, Config};

fn init_logging(filter: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(ansi).try_init();
}

/// One-shot commands log to stderr: their stdout is the answer (`vapid show`
/// is piped into other tools) and must not carry log lines.
fn init_command_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Parses the command line; a mistake in it is one line on stderr and exit
/// code 2 (help and version print as clap writes them).
fn parse_command_line() -> Cli {
    use clap::error::ErrorKind;
    Cli::try_parse().unwrap_or_else(|e| match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            e.exit()
        }
        _ => {
            // clap's message up to its usage block, folded into one line.
            let text = e.to_string();
            let said: Vec<&str> = text
                .lines()
                .map(str::trim)
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .filter(|l| !l.is_empty())
                .collect();
            let said = said.join(" ");
            eprintln!("herold: {} (see herold --help)", said.trim_start_matches("error: "));
            std::process::exit(2);
        }
    })
}

fn main() {
    let cli = parse_command_line();
    let result = match cli.command.as_ref().unwrap_or(&Command::Serve) {
        Command::Serve => serve(&cli),
        command => {
            init_command_logging();
            herold::cli::run(&cli, command)
        }
    };
    if let Err(e) = result {
        eprintln!("herold: {e:#}");
        std::process::exit(1);
    }
}

fn serve(cli: &Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    init_logging(&config.log);
    let listen = config.listen;
    let backend = if config.backend.is_postgres() { "PostgreSQL" } else { "SQLite" };
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let (grace, bound) = (config.shutdown_grace, config.shutdown_timeout);
    actix_web::rt::System::new().block_on(async move {
        // Signals are ours, not actix's (`disable_signals` below): SIGTERM
        // first marks the instance draining while it keeps serving. Taken
        // before anything else, so an early SIGTERM is not the default kill.
        let mut signals = Signals::new()?;
        let state = actix_web::web::block(move || AppState::open(config, Clock::system()))
            .await?
            .map_err(|e| anyhow::anyhow!(e))?;
        tracing::info!(%listen, backend, vapid_public_key = state.keys.vapid.public_key(), "herold serving");
        if state.config.delivery_workers == 0 {
            tracing::warn!(
                "HEROLD_DELIVERY_WORKERS=0: this instance delivers nothing; another one on the database must"
            );
        }
        let engine = herold::delivery::Delivery::new(state.clone(), state.config.delivery.clone())
            .map_err(|e| anyhow::anyhow!(e))?;
        let delivery = herold::delivery::DeliveryHandle::start(engine, state.config.delivery_workers)
            .map_err(|e| anyhow::anyhow!(e))?;
        let app_state = state.clone();
        let server = actix_web::HttpServer::new(move || herold::app(app_state.clone()))
            .workers(workers)
            .disable_signals()
            // Requests in flight get what is left of the bound after the grace period.
            .shutdown_timeout(bound.saturating_sub(grace).as_secs().max(1))
            .bind(listen)
            .map_err(|e| anyhow::anyhow!("HEROLD_LISTEN: cannot bind {listen}: {e}"))?
            .run();
        let http = server.handle();
        let mut served = actix_web::rt::spawn(server);

        let signal = tokio::select! {
            signal = signals.next() => signal,
            result = &mut served => {
                // The server ended by itself (it does not, short of an error).
                let deadline = std::time::Instant::now() + bound;
                actix_web::web::block(move || delivery.shutdown_by(deadline)).await?;
                return Ok(result??);
            }
        };
        let started = std::time::Instant::now();
        let deadline = started + bound;
        state.start_draining();
        tracing::info!(
            signal,
            grace_secs = grace.as_secs(),
            timeout_secs = bound.as_secs(),
            "draining: /readyz answers 503; serving until the grace period ends"
        );
        // Delivery claims nothing new from now on (other instances take the
        // work); the batches in flight have until the bound to finish.
        let (report, stopped) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("herold-stop".into())
            .spawn(move || {
                let _ = report.send(delivery.shutdown_by(deadline));
            })
            .map_err(|e| anyhow::anyhow!("shutdown thread: {e}"))?;

        // Load balancers see the 503 and take this instance out of rotation
        // meanwhile; a second signal cuts the grace short.
        tokio::select! {
            _ = tokio::time::sleep(grace) => {}
            signal = signals.next() => tracing::info!(signal, "second signal: stopping now"),
        }
        tracing::info!("stopping the HTTP server: no new connections, requests in flight finish");
        let http_stopped = tokio::time::timeout_at(deadline.into(), async {
            http.stop(true).await;
            let _ = (&mut served).await;
        })
        .await
        .is_ok();
        if !http_stopped {
            tracing::warn!("requests still in flight at the end of HEROLD_SHUTDOWN_TIMEOUT_SECS were cut off");
        }
        // The delivery thread keeps its own bound; the margin covers giving
        // the leases back after a cut-off.
        let slack = std::time::Duration::from_secs(5);
        match tokio::time::timeout_at((deadline + slack).into(), stopped).await {
            Ok(Ok(herold::delivery::Stopped::Finished)) => {
                tracing::info!("delivery stopped: every batch in flight was finished and recorded")
            }
            Ok(Ok(herold::delivery::Stopped::Abandoned { released })) => tracing::warn!(
                released,
                "delivery cut off at HEROLD_SHUTDOWN_TIMEOUT_SECS: the batches in flight were abandoned; \
                 the leases released let another instance (or this one, restarted) resume them at once"
            ),
            _ => tracing::warn!("delivery did not stop in time; its leases run out by themselves"),
        }
        tracing::info!(seconds = started.elapsed().as_secs_f64(), "herold stopped");
        Ok(())
    })
}

/// SIGTERM (supervisors, Kubernetes) and SIGINT (Ctrl-C), as a stream.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// Waits for the next signal; returns its name.
    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}
