//! Writing to stdout when the reader may go away (`roar log | head`): a
//! closed pipe ends roar quietly instead of panicking like `println!`.

use std::io::Write;

pub fn line(args: std::fmt::Arguments) {
    let mut out = std::io::stdout().lock();
    ended(out.write_fmt(args).and_then(|()| out.write_all(b"\n")));
}

/// Text that carries its own line ends (a whole DOT or SVG document).
pub fn print(text: &str) {
    ended(std::io::stdout().lock().write_all(text.as_bytes()));
}

fn ended(written: std::io::Result<()>) {
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("roar: cannot write output: {e}");
        std::process::exit(1);
    }
}

/// `println!` that survives a closed stdout.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::out::line(format_args!($($arg)*)) };
}
pub(crate) use outln;
