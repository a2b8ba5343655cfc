//! Interrupts (a binary of its own: the flag is process-wide). A cancellable command is ended
//! with its process group when the flag goes up; a plain one runs on, so that clean-up after an
//! interrupt still works; the flag comes down again with `reset`.

use std::time::{Duration, Instant};

use guest::{Command, Error, Exec, Local, cancel};

#[test]
fn cancellable_commands_stop_and_others_run_on() {
    let local = Local::new("local");
    let t = Instant::now();
    let raise = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(200));
        cancel::request();
    });
    // A shell whose child sleeps: the whole process group goes.
    let e = local
        .run(&Command::new(["sh", "-c", "sleep 30; echo done"]).cancellable())
        .unwrap_err();
    raise.join().unwrap();
    assert!(matches!(e, Error::Cancelled { .. }), "{e}");
    assert!(e.to_string().contains("interrupted"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    // The flag is up: a plain command still runs (clean-up), a cancellable one stops at once.
    let out = local.check(&Command::new(["echo", "clean-up"])).unwrap();
    assert_eq!(out.stdout_lossy().trim(), "clean-up");
    assert!(!cancel::sleep(Duration::from_secs(5)));
    let mut lines = Vec::new();
    let e = local
        .run_streaming(
            &Command::new(["sh", "-c", "echo a; sleep 30"]).cancellable(),
            &mut |_, l| lines.push(l.to_string()),
        )
        .unwrap_err();
    assert!(matches!(e, Error::Cancelled { .. }), "{e}");

    cancel::reset();
    assert!(!cancel::requested());
    assert!(
        local
            .run(&Command::new(["true"]).cancellable())
            .unwrap()
            .success()
    );
}
