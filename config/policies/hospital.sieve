# Hospital default policy (NTA 7516, stalwart-nta7516 vnd.nta7516 extension).
#
# 2FA for all external mail, except NTA 7516 peers and contracted partner domains. When the recipient's
# mail servers fail SmartTLS, the message only goes to the portal; a sender domain that fails DMARC is
# refused. The gateway evaluates this script once per external recipient; the strictest decision wins.
# Recipients who passed 2FA in the last 90 days are exempted by the gateway after this policy.
require ["envelope", "environment", "variables", "vnd.stalwart.expressions", "vnd.nta7516"];

# 1. Never hand patient data to servers that fail SmartTLS: portal only.
if environment :is "vnd.nta7516.tls" "insecure" {
    eval "nta_portal('recipient mail servers fail SmartTLS')";
}
# 2. A forged sender domain is refused. vnd.nta7516.dmarc is filled for received mail (the inbound
#    checks, direction "inbound"); for mail the hospital sends it reads "none" and this never fires.
elsif environment :is "vnd.nta7516.dmarc" "fail" {
    eval "nta_reject('sender domain fails DMARC')";
}
# 3. The recipient's organisation is an NTA 7516 peer: it authenticates its own users.
elsif environment :is "vnd.nta7516.peer" "yes" {
    set "provider" "${env.vnd.nta7516.peer_provider}";
    eval "nta_exempt('NTA 7516 peer (' + provider + ')')";
}
# 4. Contracted partners that the hospital exempts by domain.
elsif envelope :domain :is "to" ["umc-partner.nl", "regiolab.nl"] {
    eval "nta_exempt('contracted partner domain')";
}
# 5. Everything else that leaves the hospital: the recipient proves who they are first.
else {
    eval "nta_require_2fa('external recipient: hospital default')";
}
