# Laboratory policy: BSN detection.
#
# Lab results that carry a citizen service number (BSN, checked with the 11-check, in the text and in
# text attachments) need the recipient's 2FA, except towards NTA 7516 peers; on servers that fail
# SmartTLS they go to the portal. A phone number also marks personal data. Very large messages are
# refused whatever else applies (strictest wins: reject beats everything).
require ["environment", "relational", "comparator-i;ascii-numeric", "vnd.stalwart.expressions", "vnd.nta7516"];

# 1. Sent mail over 20 MB: refused. A separate "if", so it adds to whatever the content rules decide
#    below. Only outbound: with the inbound checks on, the same script also sees received mail.
if allof (environment :is "vnd.nta7516.direction" "outbound",
          environment :value "gt" :comparator "i;ascii-numeric" "vnd.nta7516.size" "20000000") {
    eval "nta_reject('message over 20 MB: send large results through the portal upload')";
}

if eval "nta_has_bsn()" {
    # 2. BSN, recipient servers fail SmartTLS: portal only.
    if environment :is "vnd.nta7516.tls" "insecure" {
        eval "nta_portal('message contains a BSN, recipient mail servers fail SmartTLS')";
    # 3. BSN to an NTA 7516 peer: the peer authenticates its own users.
    } elsif environment :is "vnd.nta7516.peer" "yes" {
        eval "nta_exempt('message contains a BSN, recipient is an NTA 7516 peer')";
    # 4. BSN: 2FA.
    } else {
        eval "nta_require_2fa('message contains a BSN')";
    }
}
# 5. A phone number is personal data too: 2FA.
elsif eval "nta_has_phone()" {
    eval "nta_require_2fa('message contains a phone number')";
}
# 6. No identifiers found: no 2FA.
else {
    eval "nta_exempt('no BSN or phone number found')";
}
