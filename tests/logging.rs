//! What the server logs: an evaluation that changes many alerts writes one summary line at
//! info, not a line per alert (those are at debug).

use faultline_system_tests::{RulesDir, Server, wait_for};

/// Alerts the one evaluation changes: far more than the info lines allowed for the rule.
const ALERTS: usize = 500;

/// Pushes `load` = `value` for every instance.
fn push_all(server: &Server, value: f64) {
    let text: String = (0..ALERTS)
        .map(|i| format!("load{{instance=\"host{i}\"}} {value}\n"))
        .collect();
    let r = server.push("node", &text);
    assert!(r.status().is_success(), "push: {}", r.status());
}

fn alerts(server: &Server, state: &str) -> Option<f64> {
    server.metric(&format!("faultline_alerts{{state=\"{state}\"}}"))
}

#[test]
fn an_evaluation_changing_many_alerts_logs_a_summary_not_a_line_per_alert() {
    let dir = RulesDir::new(&["threshold"]);
    dir.write(
        "r.toml",
        r#"
[[group]]
name = "g"
interval = "200ms"

[[group.rule]]
name = "High"
plugin = "threshold"
select = "load"
params = { above = 2 }
"#,
    );
    let server = Server::start(&dir, &[]);
    push_all(&server, 5.0);
    wait_for("every alert firing", || {
        (alerts(&server, "firing")? == ALERTS as f64).then_some(())
    });
    push_all(&server, 0.0);
    wait_for("every alert resolved", || {
        (alerts(&server, "firing")? == 0.0).then_some(())
    });

    let log = server.log();
    let info: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" INFO ") && l.contains("g/High"))
        .collect();
    // A few evaluations change alerts (new, firing, resolved), each with one line.
    assert!(
        info.len() < 10,
        "{} info lines about the rule for {ALERTS} alerts:\n{}",
        info.len(),
        info.join("\n")
    );
    let summaries = |what: &str| {
        info.iter()
            .filter(|l| l.contains("alerts changed state"))
            .map(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(what)?.parse::<usize>().ok())
                    .unwrap_or(0)
            })
            .sum::<usize>()
    };
    assert_eq!(summaries("firing="), ALERTS, "{log}");
    assert_eq!(summaries("resolved="), ALERTS, "{log}");
}
