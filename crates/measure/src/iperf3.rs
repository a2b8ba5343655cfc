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
    fn an_error_report_is_an_error() {
        let e = parse(r#"{"start":{},"intervals":[],"end":{},"error":"unable to connect to server: Connection refused"}"#)
            .unwrap_err();
        assert!(e.to_string().contains("Connection refused"));
        assert!(parse("not json").is_err());
    }
}
