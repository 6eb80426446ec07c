//! The model file's checksum (`format::checksum`, a hand-written nibble-table CRC-32) against the
//! `crc` crate's CRC-32/ISO-HDLC, on the standard check string and on arbitrary bytes split
//! anywhere between the header fields and the body.

use hawq_runtime::format::checksum;
use proptest::prelude::*;

const REFERENCE: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

#[test]
fn the_check_value_of_crc_32_iso_hdlc() {
    assert_eq!(checksum(b"1234", b"56789"), 0xCBF4_3926);
    assert_eq!(checksum(b"", b""), 0);
}

proptest! {
    #[test]
    fn equals_the_crc_crate(bytes in proptest::collection::vec(any::<u8>(), 0..2048), split in any::<prop::sample::Index>()) {
        let at = split.index(bytes.len() + 1);
        prop_assert_eq!(checksum(&bytes[..at], &bytes[at..]), REFERENCE.checksum(&bytes));
    }
}
