# GP practice policy: 2FA is opt-in.
#
# Mail leaves without 2FA unless the sender marks it: "[beveiligd]" (or "[secure]") in the subject or
# the text. Marked mail needs the recipient's 2FA, and goes to the portal when the recipient's servers
# fail SmartTLS. Mail from the practice's privacy mailboxes (sender group "gdpr" in the gateway
# configuration, [organisation] sender_groups) always needs 2FA.
require ["environment", "vnd.stalwart.expressions", "vnd.nta7516"];

if anyof (eval "nta_has_tag('[beveiligd]')", eval "nta_has_tag('[secure]')") {
    # 1. Marked, but the recipient's servers fail SmartTLS: portal only.
    if environment :is "vnd.nta7516.tls" "insecure" {
        eval "nta_portal('marked [beveiligd], recipient mail servers fail SmartTLS')";
    # 2. Marked: 2FA.
    } else {
        eval "nta_require_2fa('sender marked the message [beveiligd]')";
    }
}
# 3. Privacy mailboxes: always 2FA.
elsif environment :is "vnd.nta7516.sender_group" "gdpr" {
    eval "nta_group('gdpr')";
    eval "nta_require_2fa('sender is a privacy mailbox (group gdpr)')";
}
# 4. Not marked: opt-in practice, no 2FA.
else {
    eval "nta_exempt('not marked [beveiligd]: opt-in policy')";
}
