//! What the scenario tests share: a spec of one route to one pool, and a
//! scenario checked and run through the library as `sluice simulate` does.

// Each test file uses the part of this it needs.
#![allow(dead_code)]

use sluice_compiler::document::SourceFile;
use sluice_compiler::Plan;
use sluice_simulator::workload::Workload;
use sluice_simulator::{check_scenario, simulate, Report, Topology};

/// A spec whose one route, `all`, takes every path to pool `app` of
/// `endpoints` endpoints on 127.0.0.1:9001 and up; `pool` adds settings to
/// the pool, as lines indented four spaces (`"    balance: random\n"`).
pub fn spec(endpoints: usize, pool: &str) -> String {
    let mut text = String::from(
        "version: 1\nlisteners:\n  - name: public\n    bind: 127.0.0.1:8080\npools:\n  - name: app\n",
    );
    text.push_str(pool);
    text.push_str("    endpoints:\n");
    for port in 9001..9001 + endpoints {
        text.push_str(&format!("      - address: 127.0.0.1:{port}\n"));
    }
    text.push_str("routes:\n  - name: all\n    match: { path: '/{*rest}' }\n    to: app\n");
    text
}

/// The plan of `spec`, which the test wrote to be valid.
pub fn plan(spec: &str) -> Plan {
    let checked = sluice_compiler::check(SourceFile::new("spec.yaml", spec));
    let errors: Vec<String> = checked.diagnostics.iter().map(|d| d.one_line()).collect();
    checked.plan.unwrap_or_else(|| panic!("the test spec is valid: {errors:?}"))
}

/// The workload of `scenario`, read as the file `path`, against `plan`;
/// the test wrote it to be valid.
pub fn workload(plan: &Plan, path: &str, scenario: &str) -> Workload {
    let checked = check_scenario(SourceFile::new(path, scenario), Some(plan));
    let errors: Vec<String> = checked.diagnostics.iter().map(|d| d.one_line()).collect();
    checked.workload.unwrap_or_else(|| panic!("the scenario is valid: {errors:?}"))
}

/// Run `scenario` against `spec` with the scenario's seed (0 without one).
pub fn run(spec: &str, scenario: &str) -> Report {
    let plan = plan(spec);
    let workload = workload(&plan, "scenario.yaml", scenario);
    simulate(&Topology::from_plan(&plan), &workload, workload.seed.unwrap_or(0))
}
