//! `stalwart-nta7516 bulk`: personalised secure mail from a CSV — one letter ([`template`]) filled in
//! per row of a CSV export ([`csv`]), every row checked before anything is sent ([`validate`]), the
//! recipients' mobile numbers recorded through the store (audited, source `bulk`), then each message
//! submitted through Stalwart's submission listener as the sender ([`send`]), so that it passes the MTA
//! hook like any other mail: 2FA, SmartTLS, the policy, the audit trail. A [`journal`] makes a run
//! resumable and never sends a row twice; the CSV itself is never stored.
//!
//! The flow of `bulk send`: check → (dry run: show one message) → journal → phones → submit at the
//! chosen rate → summary. Nothing is sent when a row is bad, unless `--skip-bad`.

pub mod csv;
pub mod journal;
pub mod send;
pub mod template;
pub mod validate;

use std::{
    io::IsTerminal,
    path::{Path, PathBuf},
    time::Duration,
};

use journal::{Journal, Key, State};
use send::{Reply, Stop, Submitter};
use template::{Envelope, Template};
use validate::{Checked, Recipient};

use crate::{config::Config, store::bulk::BulkPhone, store::Store};

#[derive(Debug, clap::Subcommand)]
pub enum BulkCommand {
    /// Check a template and a CSV without sending anything: every bad row with its line and why
    /// (exit 0 = every row may be sent, 1 = bad rows or a bad file).
    Check {
        /// The letter: a saved message (.eml) with {{column}} placeholders in Subject and text.
        #[arg(long, value_name = "EML")]
        template: PathBuf,
        /// The recipients: UTF-8 CSV (`;` or `,`) with an `email` column, usually `phone` (E.164).
        #[arg(long, value_name = "CSV")]
        csv: PathBuf,
    },
    /// Send the letter to every row, through Stalwart's submission listener as --as (exit 0 = every
    /// row sent or held for 2FA; 1 = something was refused, uncertain or not sent).
    Send(SendArgs),
}

#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The letter: a saved message (.eml) with {{column}} placeholders in Subject and text.
    #[arg(long, value_name = "EML")]
    pub template: PathBuf,
    /// The recipients: UTF-8 CSV (`;` or `,`) with an `email` column, usually `phone` (E.164).
    #[arg(long, value_name = "CSV")]
    pub csv: PathBuf,
    /// The sender (envelope and From); the submission account must be allowed to send as it.
    #[arg(long = "as", value_name = "ADDR")]
    pub sender: String,
    /// Gateway configuration: its database (the phone numbers) and [bulk] (the submission listener).
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Send the good rows even when some are bad (the bad ones are listed and left out).
    #[arg(long)]
    pub skip_bad: bool,
    /// Replace a recipient's known, different mobile number with the CSV's (else it is kept).
    #[arg(long)]
    pub update_phones: bool,
    /// At most this many messages per second (`5`, `5/s`, `120/min`).
    #[arg(long, default_value = "5/s", value_parser = Rate::parse)]
    pub rate: Rate,
    /// The journal file (default: next to the CSV, `<csv>.journal`).
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Show the message of the first good row and send nothing (no database, no journal).
    #[arg(long)]
    pub dry_run: bool,
    /// Submit again the rows a crash left uncertain (same Message-ID and Date: the gateway recognises a
    /// message it already holds).
    #[arg(long)]
    pub resend_uncertain: bool,
}

/// `--rate`: messages per second.
#[derive(Debug, Clone, Copy)]
pub struct Rate(f64);

impl Rate {
    pub fn parse(s: &str) -> Result<Rate, String> {
        let (n, per) = s.split_once('/').unwrap_or((s, "s"));
        let seconds = match per.trim() {
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            other => return Err(format!("{other:?}: use N/s or N/min")),
        };
        match n.trim().parse::<f64>() {
            Ok(v) if v > 0.0 && v.is_finite() => Ok(Rate(v / seconds)),
            _ => Err(format!("{s:?}: a positive number of messages, e.g. 5/s")),
        }
    }

    fn period(self) -> Duration {
        Duration::from_secs_f64(1.0 / self.0)
    }
}

pub async fn run(cmd: BulkCommand) -> Result<(), String> {
    match cmd {
        BulkCommand::Check { template, csv } => {
            let (_, checked) = load(&template, &csv)?;
            if checked.bad.is_empty() {
                println!(
                    "{}: {} rows, every one may be sent",
                    csv.display(),
                    checked.good.len()
                );
                return Ok(());
            }
            Err(refusal(
                &checked,
                "fix them, or leave them out with bulk send --skip-bad",
            ))
        }
        BulkCommand::Send(args) => send(args).await,
    }
}

/// Reads and checks the template and the CSV; the bad rows are printed to stderr.
fn load(template: &Path, csv: &Path) -> Result<(Template, Checked), String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let t =
        Template::parse(&read(template)?).map_err(|e| format!("{}: {e}", template.display()))?;
    let table = csv::parse(&read(csv)?).map_err(|e| format!("{}: {e}", csv.display()))?;
    let checked = validate::check(&t, &table).map_err(|e| format!("{}: {e}", csv.display()))?;
    for bad in &checked.bad {
        eprintln!("{}: {bad}", csv.display());
    }
    Ok((t, checked))
}

fn refusal(checked: &Checked, then: &str) -> String {
    let lines: Vec<u64> = checked.bad.iter().map(|b| b.line).collect();
    format!(
        "{} of {} rows are bad ({}): {then}",
        checked.bad.len(),
        checked.bad.len() + checked.good.len(),
        line_list(&lines)
    )
}

/// `line 3` or `lines 3, 9`.
fn line_list(lines: &[u64]) -> String {
    let list: Vec<String> = lines.iter().map(u64::to_string).collect();
    let word = if list.len() == 1 { "line" } else { "lines" };
    format!("{word} {}", list.join(", "))
}

async fn send(args: SendArgs) -> Result<(), String> {
    let (template, checked) = load(&args.template, &args.csv)?;
    if !checked.bad.is_empty() && !args.skip_bad && !args.dry_run {
        return Err(refusal(
            &checked,
            "nothing was sent; fix them, or send the others with --skip-bad",
        ));
    }
    let sender = crate::admin::validate::address(&args.sender).map_err(|e| format!("--as: {e}"))?;
    if let Some(from) = template.from_address().filter(|f| *f != sender) {
        return Err(format!(
            "the template's From is <{from}> but --as is <{sender}>: they must be the same sender"
        ));
    }
    let first = checked.good.first().ok_or("no row to send")?;
    if args.dry_run {
        let key = Key::of(template.sha256(), first);
        let message = render(&template, first, &sender, &key, crate::time::now());
        print!("{}", String::from_utf8_lossy(&message));
        eprintln!("(dry run: line {} shown, nothing sent)", first.line);
        return Ok(());
    }
    let config_path = args
        .config
        .as_deref()
        .ok_or("bulk send needs --config (the gateway's configuration with a [bulk] section)")?;
    let config = Config::load(config_path).map_err(|e| e.to_string())?;
    let bulk = config.bulk.as_ref().ok_or_else(|| {
        format!(
            "{}: no [bulk] section (bulk.submission = \"host:587\", …)",
            config_path.display()
        )
    })?;
    let journal_path = args
        .journal
        .clone()
        .unwrap_or_else(|| journal::default_path(&args.csv));
    let mut journal = Journal::open(&journal_path)?;
    let mut summary = Summary {
        bad: checked.bad.len(),
        ..Summary::default()
    };
    let plan = plan(
        &template,
        &checked.good,
        &journal,
        args.resend_uncertain,
        &mut summary,
    );
    let store = Store::connect(&config.storage.url, 2)
        .await
        .map_err(|e| e.to_string())?;
    record_phones(&store, &sender, &plan, args.update_phones).await?;
    let mut submitter = Submitter::new(bulk, &sender)?;
    let run = Run {
        template: &template,
        sender: &sender,
        rate: args.rate,
    };
    run.deliver(&plan, &mut journal, &mut submitter, &mut summary)
        .await?;
    submitter.close().await;
    summary.print(&journal_path);
    summary.outcome()
}

/// One row to submit: its key and, for an uncertain row sent again, the Date it had.
struct Planned<'a> {
    row: &'a Recipient,
    key: Key,
    date: Option<i64>,
}

/// The rows still to send, after the journal: sent rows are skipped, uncertain ones only with
/// `resend_uncertain`.
fn plan<'a>(
    template: &Template,
    good: &'a [Recipient],
    journal: &Journal,
    resend_uncertain: bool,
    summary: &mut Summary,
) -> Vec<Planned<'a>> {
    let mut out = Vec::new();
    for row in good {
        let key = Key::of(template.sha256(), row);
        let date = match journal.state(&key) {
            Some(s) if s.is_sent() => {
                summary.earlier += 1;
                continue;
            }
            Some(State::Sending { .. }) if !resend_uncertain => {
                summary.uncertain.push(row.line);
                continue;
            }
            Some(State::Sending { date }) => Some(date),
            _ => None,
        };
        out.push(Planned { row, key, date });
    }
    out
}

/// The CSV's numbers for the rows about to be sent, through the store (audited); a summary line.
async fn record_phones(
    store: &Store,
    sender: &str,
    plan: &[Planned<'_>],
    replace: bool,
) -> Result<(), String> {
    let rows: Vec<(&str, &str)> = plan
        .iter()
        .filter_map(|p| Some((p.row.email.as_str(), p.row.phone.as_ref()?.as_str())))
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let outcomes = store
        .record_bulk_phones(sender, &rows, replace, crate::time::now())
        .await
        .map_err(|e| format!("recording the phone numbers: {e}"))?;
    let count = |o: BulkPhone| outcomes.iter().filter(|x| **x == o).count();
    eprintln!(
        "phone numbers: {} recorded, {} already known, {} replaced, {} kept (a different number is known{})",
        count(BulkPhone::Recorded),
        count(BulkPhone::Unchanged),
        count(BulkPhone::Replaced),
        count(BulkPhone::Kept),
        if replace { "" } else { "; --update-phones replaces it" }
    );
    Ok(())
}

/// The message of one row.
fn render(template: &Template, row: &Recipient, sender: &str, key: &Key, date: i64) -> Vec<u8> {
    let domain = sender.rsplit_once('@').map_or("localhost", |(_, d)| d);
    let message_id = format!("{}.bulk@{domain}", &key.0[..32]);
    template.render(
        &row.values,
        &Envelope {
            from: sender,
            to: &row.email,
            date: &template::mail_date(date),
            message_id: &message_id,
        },
    )
}

/// What a run did.
#[derive(Debug, Default)]
struct Summary {
    accepted: usize,
    held: usize,
    refused: Vec<(u64, u16, String)>,
    /// Lines cut off between their data and Stalwart's reply (this run or an earlier one).
    uncertain: Vec<u64>,
    /// Rows sent by an earlier run.
    earlier: usize,
    bad: usize,
    /// Rows not tried (interrupted, or the run stopped).
    left: usize,
    stopped: Option<String>,
}

impl Summary {
    fn print(&self, journal: &Path) {
        println!("held for 2FA:   {}", self.held);
        println!("sent:           {}", self.accepted);
        println!("refused:        {}", self.refused.len());
        for (line, code, text) in &self.refused {
            let again = if (400..500).contains(code) {
                " (temporary: run again later)"
            } else {
                ""
            };
            println!("  line {line}: {code} {}{again}", text.replace('\n', " "));
        }
        if self.earlier > 0 {
            println!(
                "already sent:   {} (by an earlier run; skipped)",
                self.earlier
            );
        }
        if !self.uncertain.is_empty() {
            println!(
                "uncertain:      {} ({}): cut off before Stalwart answered, not sent again; check \
                 the held messages, then run again with --resend-uncertain if they are missing",
                self.uncertain.len(),
                line_list(&self.uncertain)
            );
        }
        if self.bad > 0 {
            println!("bad rows:       {} (left out)", self.bad);
        }
        if self.left > 0 {
            println!(
                "not sent yet:   {} (run the same command again to go on)",
                self.left
            );
        }
        println!("journal:        {}", journal.display());
    }

    fn outcome(&self) -> Result<(), String> {
        if let Some(why) = &self.stopped {
            return Err(why.clone());
        }
        if self.refused.is_empty() && self.uncertain.is_empty() && self.left == 0 {
            Ok(())
        } else {
            Err("not every row was sent (see the summary)".into())
        }
    }
}

struct Run<'a> {
    template: &'a Template,
    sender: &'a str,
    rate: Rate,
}

impl Run<'_> {
    /// Submits the planned rows in order at the rate, each `sending` in the journal before it goes
    /// out and its outcome after; stops at an interrupt (SIGINT, SIGTERM) or a fatal error.
    async fn deliver(
        &self,
        plan: &[Planned<'_>],
        journal: &mut Journal,
        submitter: &mut Submitter,
        summary: &mut Summary,
    ) -> Result<(), String> {
        let mut interrupted = interrupt_signal();
        let progress = Progress::new(plan.len());
        let mut next = tokio::time::Instant::now();
        for (i, p) in plan.iter().enumerate() {
            // The pause between messages ends early for an interrupt.
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = interrupted.wait_for(|set| *set) => {}
            }
            if *interrupted.borrow() {
                summary.left = plan.len() - i;
                summary.stopped = Some("interrupted; run the same command again to go on".into());
                break;
            }
            next += self.rate.period();
            let date = p.date.unwrap_or_else(crate::time::now);
            let message = render(self.template, p.row, self.sender, &p.key, date);
            journal.record(&p.key, State::Sending { date })?;
            match submitter.submit(&p.row.email, &message).await {
                Ok(reply) => record(journal, p, reply, summary)?,
                Err(Stop::Uncertain(e)) => {
                    eprintln!("line {}: {e}", p.row.line);
                    summary.uncertain.push(p.row.line);
                }
                Err(Stop::Fatal(e)) => {
                    journal.record(&p.key, State::Refused { code: 0 })?;
                    summary.left = plan.len() - i;
                    summary.stopped = Some(e);
                    break;
                }
            }
            progress.show(i + 1, summary);
        }
        progress.done();
        Ok(())
    }
}

fn record(
    journal: &mut Journal,
    p: &Planned<'_>,
    reply: Reply,
    summary: &mut Summary,
) -> Result<(), String> {
    match reply {
        Reply::Accepted => {
            summary.accepted += 1;
            journal.record(&p.key, State::Accepted)
        }
        Reply::Held(_) => {
            summary.held += 1;
            journal.record(&p.key, State::Held)
        }
        Reply::Refused { code, text } => {
            summary.refused.push((p.row.line, code, text));
            journal.record(&p.key, State::Refused { code })
        }
    }
}

/// True once SIGINT or SIGTERM arrives: the run stops before the next row (the current one finishes
/// and is journaled).
fn interrupt_signal() -> tokio::sync::watch::Receiver<bool> {
    let (set, flag) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        interrupt().await;
        eprintln!("\ninterrupted: stopping after the current message");
        let _ = set.send(true);
        // Keep the sender: a dropped one would end `wait_for` at once, for nothing.
        std::future::pending::<()>().await;
    });
    flag
}

/// Returns at SIGINT or SIGTERM; never when they cannot be caught (they then end the process, which
/// the journal makes safe as well).
async fn interrupt() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            },
            Err(_) => ctrl_c.await,
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}

/// A progress line on stderr when it is a terminal.
struct Progress {
    total: usize,
    terminal: bool,
}

impl Progress {
    fn new(total: usize) -> Progress {
        Progress {
            total,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn show(&self, done: usize, s: &Summary) {
        if self.terminal {
            let width = 30;
            let filled = done * width / self.total.max(1);
            eprint!(
                "\r[{}{}] {done}/{}  held {}  sent {}  refused {}  uncertain {}",
                "#".repeat(filled),
                " ".repeat(width - filled),
                self.total,
                s.held,
                s.accepted,
                s.refused.len(),
                s.uncertain.len()
            );
        }
    }

    fn done(&self) {
        if self.terminal {
            eprintln!();
        }
    }
}
