//! The HTML report as a reader sees it: `simulate --report` writes the page,
//! headless Chromium renders it from the file (no server, no network) and
//! takes a screenshot, and the screenshot must show the tables and charts.
//!
//! The screenshot is kept as `target/report-screenshot.png` for CI to keep.
//! Without a `chromium` on the PATH the test says so and passes, unless
//! `SLUICE_REQUIRE_CHROMIUM=1`, as CI sets, makes that a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 2400;

/// `chromium` on the PATH, if any.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join("chromium")).find(|p| p.is_file())
}

/// The build's `target` folder: the test binary's `sluice` is in `target/debug`.
fn target_dir() -> PathBuf {
    let binary = Path::new(env!("CARGO_BIN_EXE_sluice"));
    binary.ancestors().nth(2).expect("the binary is in target/<profile>/").to_path_buf()
}

/// The screenshot as RGB pixels, with its width and height.
fn decode(png_file: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let file = std::fs::File::open(png_file).unwrap();
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().expect("the screenshot is a PNG");
    let mut buffer = vec![0; reader.output_buffer_size().expect("a PNG of sane size")];
    let frame = reader.next_frame(&mut buffer).expect("the PNG decodes");
    let channels = frame.color_type.samples();
    assert!(channels >= 3, "a colour screenshot, not {:?}", frame.color_type);
    let pixels =
        buffer[..frame.buffer_size()].chunks_exact(channels).map(|p| [p[0], p[1], p[2]]).collect();
    (frame.width, frame.height, pixels)
}

/// Run `command`, ending it (by its own handle) if it outlasts `limit`.
fn run_with_limit(command: &mut Command, limit: Duration) -> std::process::ExitStatus {
    let mut child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium took longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn headless_chromium_renders_the_report_with_its_charts() {
    let Some(chromium) = chromium() else {
        let required = std::env::var("SLUICE_REQUIRE_CHROMIUM").is_ok_and(|v| v == "1");
        assert!(!required, "SLUICE_REQUIRE_CHROMIUM=1 but no `chromium` is on the PATH");
        // Straight to stderr, past the test harness's capture, so it shows.
        let message = "skipped: no `chromium` on the PATH to render the HTML report with \
                       (SLUICE_REQUIRE_CHROMIUM=1 makes this a failure)\n";
        let _ = std::io::Write::write_all(&mut std::io::stderr(), message.as_bytes());
        return;
    };

    // The report of a scenario with an event, errors and two replications.
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["simulate", "specs/platform.yaml", "--scenario"])
        .arg("specs/scenarios/black-hole.yaml")
        .args(["--replications", "2", "--report"])
        .arg(&html)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // A fresh profile; nothing that would reach the network.
    let profile = tempfile::tempdir().unwrap();
    let shot = dir.path().join("report.png");
    let status = run_with_limit(
        Command::new(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--window-size={WIDTH},{HEIGHT}"))
            .arg(format!("--screenshot={}", shot.display()))
            .arg(format!("file://{}", html.display())),
        Duration::from_secs(120),
    );
    assert!(status.success(), "chromium exited with {status}");
    assert!(shot.is_file(), "no screenshot at {}", shot.display());
    let kept = target_dir().join("report-screenshot.png");
    std::fs::copy(&shot, &kept).unwrap();

    // The page fills the window, with text, tables and charts in colour.
    let (width, height, pixels) = decode(&shot);
    assert_eq!((width, height), (WIDTH, HEIGHT), "{}", kept.display());
    let ink = pixels.iter().filter(|p| p.iter().any(|&c| c < 200)).count();
    let share = ink as f64 / pixels.len() as f64;
    assert!(share > 0.02, "only {:.2}% of the page is drawn on: {}", 100.0 * share, kept.display());
    let mut colours: Vec<[u8; 3]> = pixels.clone();
    colours.sort_unstable();
    colours.dedup();
    assert!(colours.len() > 100, "{} colours: {}", colours.len(), kept.display());

    // Each variant's colour (spec blue, round_robin red, least_request
    // green) is drawn in the charts below the tables, not only in the legend.
    let charts = &pixels[(WIDTH * 450) as usize..];
    for (name, rgb) in [
        ("spec", [0x1f, 0x77, 0xb4]),
        ("round_robin", [0xd6, 0x27, 0x28]),
        ("least_request", [0x2c, 0xa0, 0x2c]),
    ] {
        let near = |p: &&[u8; 3]| p.iter().zip(rgb).all(|(&a, b)| a.abs_diff(b) < 24);
        let count = charts.iter().filter(near).count();
        assert!(count > 2_000, "{name}'s colour: {count} pixels in the charts, {}", kept.display());
    }
}
