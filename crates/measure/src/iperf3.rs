//! iperf3's JSON report (`-J`), as far as a lab's verdict needs it.

use serde::Deserialize;

use crate::Error;

#[derive(Debug, Clone, PartialEq)]
pub struct Iperf3 {
    pub bytes_received: u64,
    pub seconds: f64,
    pub per_second_bps: Vec<f64>,
    pub error: Option<String>,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    intervals: Vec<Interval>,
    end: Option<End>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Interval {
    sum: Sum,
}

#[derive(Deserialize)]
struct End {
    sum_received: Option<Sum>,
    sum_sent: Option<Sum>,
}

#[derive(Deserialize)]
struct Sum {
    #[serde(default)]
    bytes: u64,
    #[serde(default)]
    seconds: f64,
    #[serde(default)]
    bits_per_second: f64,
}

/// iperf3's version from `iperf3 --version` (`iperf 3.12 (cJSON 1.7.15)`).
pub fn version(output: &str) -> Option<(u32, u32)> {
    let word = output.split_whitespace().nth(1)?;
    let mut parts = word.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts
        .next()?
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()?;
    Some((major, minor))
}

/// How to make iperf3 speak MPTCP: its own `--mptcp` from 3.19 on, else `mptcpize run`
/// (LD_PRELOAD from Debian's mptcpd), as the guide does.
pub fn mptcp_argv(version: Option<(u32, u32)>, args: &[String]) -> Vec<String> {
    let native = version.is_some_and(|v| v >= (3, 19));
    let mut v: Vec<String> = if native {
        vec!["iperf3".into(), "--mptcp".into()]
    } else {
        vec!["mptcpize".into(), "run".into(), "iperf3".into()]
    };
    v.extend(args.iter().cloned());
    v
}

/// Parse the client's `-J` output of an upload test.
pub fn parse(json: &str) -> Result<Iperf3, Error> {
    let raw: Raw = serde_json::from_str(json).map_err(|e| Error::Iperf3(e.to_string()))?;
    let end = raw.end.as_ref();
    let received = end.and_then(|e| e.sum_received.as_ref().or(e.sum_sent.as_ref()));
    if received.is_none() && raw.error.is_some() {
        return Err(Error::Iperf3(raw.error.unwrap_or_default()));
    }
    Ok(Iperf3 {
        bytes_received: received.map_or(0, |s| s.bytes),
        seconds: received.map_or(0.0, |s| s.seconds),
        per_second_bps: raw
            .intervals
            .iter()
            .map(|i| i.sum.bits_per_second)
            .collect(),
        error: raw.error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_upload_report() {
        let json = r#"{"start":{},"intervals":[
            {"streams":[],"sum":{"start":0,"end":1.0,"seconds":1.0,"bytes":17000000,"bits_per_second":136000000.0}},
            {"streams":[],"sum":{"start":1,"end":2.0,"seconds":1.0,"bytes":17500000,"bits_per_second":140000000.0}}],
            "end":{"sum_sent":{"bytes":35000000,"seconds":2.0,"bits_per_second":140000000.0},
                   "sum_received":{"bytes":34500000,"seconds":2.01,"bits_per_second":137313432.8}}}"#;
        let r = parse(json).unwrap();
        assert_eq!(r.bytes_received, 34_500_000);
        assert_eq!(r.per_second_bps, vec![136e6, 140e6]);
        assert!(r.error.is_none());
    }

    #[test]
    fn version_picks_native_mptcp_from_3_19() {
        assert_eq!(
            version("iperf 3.12 (cJSON 1.7.15)\nLinux vm 6.18"),
            Some((3, 12))
        );
        assert_eq!(version("iperf 3.19.1 (cJSON 1.7.15)"), Some((3, 19)));
        assert_eq!(version("iperf 3.20+ (cJSON 1.7.15)"), Some((3, 20)));
        assert_eq!(version("garbage"), None);
        let args = vec!["-s".to_string()];
        assert_eq!(
            mptcp_argv(Some((3, 12)), &args),
            ["mptcpize", "run", "iperf3", "-s"]
        );
        assert_eq!(
            mptcp_argv(Some((3, 19)), &args),
            ["iperf3", "--mptcp", "-s"]
        );
        assert_eq!(mptcp_argv(None, &args), ["mptcpize", "run", "iperf3", "-s"]);
    }

    #[test]
    fn an_error_report_is_an_error() {
        let e = parse(r#"{"start":{},"intervals":[],"end":{},"error":"unable to connect to server: Connection refused"}"#)
            .unwrap_err();
        assert!(e.to_string().contains("Connection refused"));
        assert!(parse("not json").is_err());
    }
}
