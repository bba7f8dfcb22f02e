"""DNSSEC and DANE (RFC 7672) for outbound mail, against real signed
zones: nsd serves example. and its children, signed by ldns-signzone;
the gateway's libunbound forwards to it with example.'s DS as its
trust anchor.  dane.example is signed, plain.example is not (provably
insecure), bogus.example has broken signatures.  Each zone's MX is
mx.ZONE at 127.0.0.1, where an SMTP sink (STARTTLS or not) listens on
the destination's port; its TLSA records are _PORT._tcp.mx.ZONE.
"""
import os
import re
import time

import pytest

from conftest import free_port, wait_for
from dnssec_zones import DnssecZones
from testpki import TestCA, server_context
from tlsworld import Sink, TlsWorld, parse_dsn, SENDER

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/sbin/nsd"),
                                reason="nsd is not installed")


@pytest.fixture
def pki(tmp_path):
    return TestCA(tmp_path / "pki")


@pytest.fixture
def zones(tmp_path):
    z = DnssecZones(tmp_path / "dns")
    z.add_zone("dane.example")
    z.add_zone("plain.example", signed=False)
    z.add_zone("bogus.example", bogus=True)
    for zone in ("dane.example", "plain.example", "bogus.example"):
        z.add(zone, "@ MX 10 mx.%s." % zone)
        z.add(zone, "mx A 127.0.0.1")
    yield z
    z.stop()


@pytest.fixture
def sinks():
    started = []
    yield started
    for s in started:
        s.stop()


def sink(sinks, port=None, cert=None, rcpt=None):
    """A sink; with cert (cert, key, chain) it offers STARTTLS."""
    ctx = server_context(cert[0], cert[1], cert[2]) if cert else None
    s = Sink(port, ctx, rcpt)
    sinks.append(s)
    return s


@pytest.fixture
def world(smx, zones):
    return TlsWorld(smx, zones)


def test_matching_dane_ee_record_is_delivered_verified(world, zones, pki,
                                                       sinks):
    cert = pki.issue("mx.dane.example", selfsigned=True)
    # carol is refused for now: the message stays, with its history.
    s = sink(sinks, cert=cert, rcpt=lambda a: "451 4.2.0 later"
             if a.startswith("carol") else None)
    zones.add_tlsa("dane.example", "mx.dane.example", s.port, cert[0],
                   3, 1, 1)
    zones.start()
    d = world.start("dane.example:%d" % s.port, "dane",
                    conf="retry 10m to 1h expire 1d")
    qid = world.send(["bob@example.com", "carol@example.com"])
    m = s.wait(1)[0]
    assert m["tls"] and m["rcpts"] == ["bob@example.com"]
    r = world.delivery(status="sent")
    assert r["verified"] == "dane" and r["tls"].startswith("TLSv1")
    assert re.search(r"event=starttls relay=mx.dane.example\S+ .*"
                     r"verified=dane check=\"1 usable TLSA record of 1, "
                     r"DNSSEC-validated; DANE-EE 3 1 1 matched\"", d.log())
    # What was checked is in the message's history too.
    wait_for(lambda: "deferred via" in d.ctl("show", "message", qid).stdout,
             10, what="the attempt in the history")
    out = d.ctl("show", "message", qid).stdout
    assert re.search(r"delivered via mx.dane.example \[127.0.0.1\] "
                     r"tls=TLSv1\.\d verified=dane: \"250 [^\n]* "
                     r"<bob@example.com>$", out, re.M), out
    assert re.search(r"deferred via mx.dane.example \[127.0.0.1\] "
                     r"tls=TLSv1\.\d verified=dane: \"451 4.2.0 later\" "
                     r"<carol@example.com>$", out, re.M), out
    assert re.search(r"^recipient 2 <carol@example.com> .* tls=dane ", out,
                     re.M), out
    wait_for(lambda: world.stat("relay.tls.dane") >= 1, 5,
             what="relay.tls.dane counted")


def test_dane_ta_record_checks_chain_and_name(world, zones, pki, sinks):
    inter = pki.issue("DANE Test Intermediate", ca=True)
    cert = pki.issue("mx.dane.example", issuer=inter)
    s = sink(sinks, cert=cert)
    # The intermediate as trust anchor: the server sends it (chain).
    zones.add_tlsa("dane.example", "mx.dane.example", s.port, inter[0],
                   2, 0, 1)
    zones.start()
    world.start("dane.example:%d" % s.port, "dane")
    world.send()
    assert s.wait(1)[0]["tls"]
    r = world.delivery(status="sent")
    assert r["verified"] == "dane"


def test_dane_ta_with_the_wrong_name_is_deferred(world, zones, pki, sinks):
    inter = pki.issue("DANE Test Intermediate", ca=True)
    cert = pki.issue("elsewhere.example", issuer=inter)
    s = sink(sinks, cert=cert)
    zones.add_tlsa("dane.example", "mx.dane.example", s.port, inter[0],
                   2, 0, 1)
    zones.start()
    world.start("dane.example:%d" % s.port, "dane")
    world.send()
    r = world.delivery()
    assert r["status"] == "deferred"
    assert "4.7.5 DANE" in r["reply"] and "hostname mismatch" in r["reply"]
    assert s.messages == []


def test_tlsa_that_does_not_match_is_deferred_never_in_clear(world, zones,
                                                             pki, sinks):
    cert = pki.issue("mx.dane.example", selfsigned=True)
    other = pki.issue("someone-else.example", selfsigned=True)
    s = sink(sinks, cert=cert)
    zones.add_tlsa("dane.example", "mx.dane.example", s.port, other[0],
                   3, 1, 1)
    zones.start()
    d = world.start("dane.example:%d" % s.port, "dane",
                    conf="retry 1s to 2s expire 1h")
    world.send()
    r = world.delivery()
    assert r["status"] == "deferred" and r["verified"] == "none"
    assert r["reply"].startswith("4.7.5 DANE: the certificate of "
                                 "mx.dane.example")
    assert "no TLSA record matched" in r["reply"]
    # Tried again (and again refused), never sent without TLS.
    wait_for(lambda: len(world.deliveries()) >= 2, 20, what="a retry")
    assert all(x["status"] == "deferred" for x in world.deliveries())
    assert s.messages == []
    assert "action=retry-without-tls" not in d.log()
    wait_for(lambda: world.stat("relay.tls.dane_failed") >= 2, 5,
             what="relay.tls.dane_failed counted")


def test_dane_only_without_tlsa_is_deferred(world, zones, pki, sinks):
    cert = pki.issue("mx.dane.example", selfsigned=True)
    s = sink(sinks, cert=cert)
    zones.start()
    world.start("dane.example:%d" % s.port, "dane-only")
    world.send()
    r = world.delivery()
    assert r["status"] == "deferred"
    assert r["reply"] == ("4.7.5 mx.dane.example[127.0.0.1]:%d not used: "
                          "tls dane-only: no TLSA record" % s.port)
    assert s.messages == []


def test_dane_only_in_an_unsigned_zone_is_deferred(world, zones, sinks,
                                                   pki):
    s = sink(sinks, cert=pki.issue("mx.plain.example", selfsigned=True))
    zones.start()
    world.start("plain.example:%d" % s.port, "dane-only")
    world.send()
    r = world.delivery()
    assert r["status"] == "deferred"
    assert "not DNSSEC-signed" in r["reply"]
    assert s.messages == []


def test_unsigned_zone_is_opportunistic(world, zones, pki, sinks):
    s = sink(sinks, cert=pki.issue("mx.plain.example", selfsigned=True))
    # A TLSA record in an unsigned zone means nothing.
    other = pki.issue("someone-else.example", selfsigned=True)
    zones.add_tlsa("plain.example", "mx.plain.example", s.port, other[0],
                   3, 1, 1)
    zones.start()
    world.start("plain.example:%d" % s.port, "dane")
    world.send()
    assert s.wait(1)[0]["tls"]
    r = world.delivery(status="sent")
    assert r["verified"] == "none" and r["tls"].startswith("TLSv1")


def test_unsigned_zone_without_starttls_goes_in_clear(world, zones, sinks):
    s = sink(sinks)
    zones.start()
    world.start("plain.example:%d" % s.port, "dane")
    world.send()
    assert not s.wait(1)[0]["tls"]
    r = world.delivery(status="sent")
    assert r["tls"] == "none" and r["verified"] == "none"


def test_bogus_signature_is_deferred(world, zones, sinks):
    s = sink(sinks)
    zones.start()
    d = world.start("bogus.example:%d" % s.port, "dane")
    world.send()
    r = world.delivery()
    assert r["status"] == "deferred"
    assert r["reply"].startswith("4.4.3 temporary DNS failure looking up "
                                 "MX of bogus.example: DNSSEC validation "
                                 "failed")
    assert re.search(r"event=dnssec-bogus name=bogus.example type=MX "
                     r"why=\".*signature", d.log())
    assert s.messages == []


def test_bogus_is_deferred_whatever_the_policy(world, zones, sinks):
    # Not a DANE policy, and still no "no such record" from a bogus answer.
    s = sink(sinks)
    zones.start()
    world.start("bogus.example:%d" % s.port, "opportunistic")
    world.send()
    r = world.delivery()
    assert r["status"] == "deferred" and "DNSSEC validation" in r["reply"]
    assert s.messages == []


def test_starttls_stripped_from_a_dane_host_is_deferred_and_the_dsn_says_why(
        world, zones, pki, sinks):
    port = free_port()
    cert = pki.issue("mx.dane.example", selfsigned=True)
    zones.add_tlsa("dane.example", "mx.dane.example", port, cert[0], 3, 1, 1)
    zones.start()
    s = sink(sinks, port=port)             # no STARTTLS: a downgrade
    dsn = sink(sinks)
    d = world.start("dane.example:%d" % port, "dane",
                    conf="retry 1s to 2s expire 1m", dsn=dsn)
    qid = world.send()
    r = world.delivery()
    assert r["status"] == "deferred"
    assert r["reply"] == ("4.7.4 TLS required but not offered by "
                          "mx.dane.example[127.0.0.1]:%d (dane: 1 usable "
                          "TLSA record of 1, DNSSEC-validated)" % port)
    assert s.messages == []
    # Expiry (the arrival moved back while the daemon is down): the
    # failure DSN gives the reason.
    assert d.stop() == 0
    env = os.path.join(d.queue_dir, "queue", qid + ".env")
    with open(env) as f:
        text = f.read()
    text = re.sub(r"(?m)^arrival=\d+$", "arrival=%d" % (time.time() - 58),
                  text)
    with open(env, "w") as f:
        f.write(text)
    d.start()
    m = dsn.wait(1, 40)[0]
    assert m["rcpts"] == [SENDER]
    human, rcpts = parse_dsn(m["data"])
    assert rcpts[0]["Action"] == "failed"
    code = re.sub(r"\s+", " ", rcpts[0]["Diagnostic-Code"])
    assert "TLS required but not offered" in code
    assert "dane: 1 usable TLSA record" in code
    assert s.messages == []
    wait_for(lambda: world.stat("relay.tls.downgrade") >= 1, 5,
             what="relay.tls.downgrade counted")


def test_unusable_tlsa_records_require_encryption(world, zones, pki, sinks):
    port = free_port()
    cert = pki.issue("mx.dane.example", selfsigned=True)
    # PKIX-EE (usage 1) is not for SMTP: TLS, but no authentication.
    zones.add_tlsa("dane.example", "mx.dane.example", port, cert[0], 1, 1, 1)
    zones.start()
    s = sink(sinks, port=port)
    world.start("dane.example:%d" % port, "dane")
    world.send()
    r = world.delivery()
    assert r["status"] == "deferred"
    assert "TLS required but not offered" in r["reply"]
    assert "TLSA records all unusable" in r["reply"]
    assert s.messages == []


def test_lookup_shows_the_policy_of_each_mx_host(world, zones, pki, sinks):
    cert = pki.issue("mx.dane.example", selfsigned=True)
    s = sink(sinks, cert=cert)
    zones.add("dane.example", "@ MX 20 backup.dane.example.")
    zones.add("dane.example", "backup A 127.0.0.1")
    zones.add_tlsa("dane.example", "mx.dane.example", s.port, cert[0],
                   3, 1, 1)
    zones.start()
    d = world.start("dane.example:%d" % s.port, "dane")
    r = d.ctl("lookup", "bob@example.com")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "tls          dane (the route's policy)\n" in out
    assert ("host 1       10 mx.dane.example [127.0.0.1]: dane (1 usable "
            "TLSA record of 1, DNSSEC-validated)\n") in out, out
    assert ("host 2       20 backup.dane.example [127.0.0.1]: "
            "opportunistic (tls dane: no TLSA record, no MTA-STS policy: "
            "opportunistic)\n") in out, out
    assert ("dns          DNSSEC: MX records validated; MTA-STS: no "
            "MTA-STS policy\n") in out
    j = d.ctl_json("lookup", "bob@example.com")
    assert j["tls"]["policy"] == "dane"
    assert [h["check"] for h in j["tls"]["hosts"]] == ["dane",
                                                       "opportunistic"]


def test_resolver_without_dnssec_is_named_at_start(smx, zones):
    # A plain DNS server (no signatures) under example.'s anchor: every
    # answer would be bogus, and the log says so once, naming it.
    from conftest import DnsServer
    plain = DnsServer()
    try:
        zones.build()
        d = smx.start('resolver "%s"\ntrust-anchor "%s"\n' %
                      (plain.addr, zones.anchor_file))
        d.wait_log(r"DNSSEC: resolver %s gives answers that do not "
                   r"validate" % re.escape(plain.addr), 30)
    finally:
        plain.stop()


def test_reload_with_a_bad_trust_anchor_is_refused(world, zones, pki, sinks):
    cert = pki.issue("mx.dane.example", selfsigned=True)
    s = sink(sinks, cert=cert)
    zones.add_tlsa("dane.example", "mx.dane.example", s.port, cert[0],
                   3, 1, 1)
    zones.start()
    d = world.start("dane.example:%d" % s.port, "dane")
    with open(zones.anchor_file) as f:
        good = f.read()
    with open(zones.anchor_file, "w") as f:
        f.write("example. IN DS 1 13 2 not-a-digest\n")
    r = d.ctl("reload")
    assert r.returncode == 1
    assert "DNSSEC trust anchors refused by libunbound" in r.stdout + r.stderr
    with open(zones.anchor_file, "w") as f:
        f.write(good)
    world.send()
    s.wait(1)
    assert world.delivery(status="sent")["verified"] == "dane"
