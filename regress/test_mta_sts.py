"""MTA-STS (RFC 8461) for outbound mail: sts.example (an unsigned zone,
served by nsd as in test_dane.py) has an _mta-sts TXT record, its MX
mx.sts.example at 127.0.0.1 (an SMTP sink with a certificate of the
test CA) and mta-sts.sts.example on a random loopback address, where an
HTTPS server of the same CA serves the policy on port 443, the port the
policy URL always uses (so these tests need root).  The gateway trusts
the test CA through "ca".
"""
import os
import re
import time

import pytest

from conftest import free_port, wait_for
from dnssec_zones import DnssecZones
from testpki import StsServer, TestCA, random_loopback, server_context
from tlsworld import Sink, TlsWorld

pytestmark = [
    pytest.mark.skipif(not os.path.exists("/usr/sbin/nsd"),
                       reason="nsd is not installed"),
    pytest.mark.skipif(os.geteuid() != 0,
                       reason="the policy server needs port 443 (root)"),
]


class StsWorld(TlsWorld):
    """TlsWorld with the test CA as the gateway's CA store."""

    def body(self, dest, tls, conf=""):
        return super().body(dest, tls, 'ca "%s"\n%s' % (self.ca.cert, conf))


@pytest.fixture
def pki(tmp_path):
    return TestCA(tmp_path / "pki")


@pytest.fixture
def sinks():
    started = []
    yield started
    for s in started:
        s.stop()


@pytest.fixture
def policy(tmp_path, pki):
    srv = StsServer(tmp_path / "pki", pki, ["mta-sts.sts.example",
                                           "mta-sts.both.example"],
                    addr=random_loopback(), port=443)
    srv.set_policy("enforce", ["mx.sts.example"])
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def zones(tmp_path, policy):
    z = DnssecZones(tmp_path / "dns")
    z.add_zone("sts.example", signed=False)
    z.add("sts.example", "@ MX 10 mx.sts.example.")
    z.add("sts.example", "mx A 127.0.0.1")
    z.add("sts.example", "mta-sts A %s" % policy.addr)
    z.txt_id = "20240101"
    yield z
    z.stop()


def start_zones(z):
    # A short TTL: the id may change during a test.
    z.add("sts.example", '_mta-sts 1 IN TXT "v=STSv1; id=%s;"' % z.txt_id)
    z.start()


def sink(sinks, pki, name="mx.sts.example", tls=True, port=None):
    ctx = server_context(*pki.issue(name)) if tls else None
    s = Sink(port, ctx)
    sinks.append(s)
    return s


@pytest.fixture
def world(smx, zones, pki):
    w = StsWorld(smx, zones)
    w.ca = pki
    return w


def test_enforce_and_a_listed_mx_is_delivered_verified(world, zones, pki,
                                                      sinks, policy):
    s = sink(sinks, pki)
    start_zones(zones)
    d = world.start("sts.example:%d" % s.port, "opportunistic")
    world.send()
    assert s.wait(1)[0]["tls"]
    r = world.delivery(status="sent")
    assert r["verified"] == "mta-sts" and r["tls"].startswith("TLSv1")
    assert policy.fetches == 1
    assert policy.requests == [("mta-sts.sts.example",
                                "/.well-known/mta-sts.txt")]
    assert re.search(r"event=mta-sts-fetched domain=sts.example "
                     r"id=20240101 mode=enforce max_age=86400 mx=1", d.log())
    assert re.search(r"event=starttls .* verified=mta-sts check=\"MTA-STS "
                     r"policy \(enforce\) lists mx.sts.example\"", d.log())
    wait_for(lambda: world.stat("relay.tls.mta_sts") >= 1 and
             world.stat("mta_sts.fetched") == 1, 5, what="the counters")


def test_enforce_and_an_mx_not_in_the_policy_is_deferred(world, zones, pki,
                                                         sinks, policy):
    policy.set_policy("enforce", ["mail.sts.example", "*.other.example"])
    s = sink(sinks, pki)
    start_zones(zones)
    world.start("sts.example:%d" % s.port, "opportunistic")
    world.send()
    r = world.delivery()
    assert r["status"] == "deferred"
    assert r["reply"] == ("4.7.5 mx.sts.example[127.0.0.1]:%d not used: "
                          "MTA-STS policy (enforce) does not list "
                          "mx.sts.example as an MX host" % s.port)
    assert s.messages == []


def test_enforce_and_an_invalid_certificate_is_deferred(world, zones, pki,
                                                        sinks, policy):
    s = sink(sinks, pki, name="elsewhere.example")
    start_zones(zones)
    world.start("sts.example:%d" % s.port, "opportunistic")
    world.send()
    r = world.delivery()
    assert r["status"] == "deferred"
    assert r["reply"].startswith("4.7.5 TLS with mx.sts.example[127.0.0.1]"
                                 ":%d failed (certificate verification "
                                 "required by mta-sts" % s.port)
    assert s.messages == []


def test_enforce_wildcard_pattern_matches_one_label(world, zones, pki,
                                                    sinks, policy):
    policy.set_policy("enforce", ["*.sts.example"])
    s = sink(sinks, pki)
    start_zones(zones)
    world.start("sts.example:%d" % s.port, "opportunistic")
    world.send()
    s.wait(1)
    assert world.delivery(status="sent")["verified"] == "mta-sts"


def test_testing_mode_is_delivered_and_logged(world, zones, pki, sinks,
                                              policy):
    policy.set_policy("testing", ["mail.sts.example"])
    s = sink(sinks, pki)
    start_zones(zones)
    d = world.start("sts.example:%d" % s.port, "opportunistic")
    world.send()
    assert s.wait(1)[0]["tls"]
    r = world.delivery(status="sent")
    assert r["verified"] == "none"
    assert re.search(r"event=mta-sts-testing domain=sts.example "
                     r"relay=mx.sts.example\S+ result=fail "
                     r"error=\"the MX host is not in the policy\"", d.log())
    wait_for(lambda: world.stat("relay.tls.mta_sts_testing_failed") >= 1,
             5, what="the counter")


def test_testing_mode_that_would_pass_says_so(world, zones, pki, sinks,
                                              policy):
    policy.set_policy("testing", ["mx.sts.example"])
    s = sink(sinks, pki)
    start_zones(zones)
    d = world.start("sts.example:%d" % s.port, "opportunistic")
    world.send()
    s.wait(1)
    assert re.search(r"event=mta-sts-testing domain=sts.example "
                     r"relay=\S+ result=pass", d.log())


def test_policy_is_kept_across_a_restart(world, zones, pki, sinks, policy):
    s = sink(sinks, pki)
    start_zones(zones)
    d = world.start("sts.example:%d" % s.port, "opportunistic")
    world.send()
    s.wait(1)
    assert policy.fetches == 1
    wait_for(lambda: os.path.exists(os.path.join(d.queue_dir, "sts",
                                                 "sts.example")),
             5, what="the policy in the spool")
    with open(os.path.join(d.queue_dir, "sts", "sts.example")) as f:
        kept = f.read()
    assert kept.startswith("id=20240101\nfetched=")
    assert "mx: mx.sts.example" in kept
    assert d.stop() == 0
    # The policy server goes; the kept policy still applies.
    policy.stop()
    d.start()
    d.wait_log(r"event=mta-sts-loaded policies=1")
    world.send("carol@example.com")
    s.wait(2)
    r = world.delivery("carol@example.com", status="sent")
    assert r["verified"] == "mta-sts"
    assert policy.fetches == 1


def test_a_new_txt_id_fetches_the_policy_again(world, zones, pki, sinks,
                                               policy):
    policy.set_policy("enforce", ["mx.sts.example"])
    s = sink(sinks, pki)
    start_zones(zones)
    d = world.start("sts.example:%d" % s.port, "opportunistic")
    world.send()
    s.wait(1)
    assert policy.fetches == 1
    # The same id: the policy in memory, no fetch.
    time.sleep(1.5)
    world.send("carol@example.com")
    s.wait(2)
    assert policy.fetches == 1
    # A new id, and a policy that no longer lists the MX.
    policy.set_policy("enforce", ["mail.sts.example"])
    zones.clear("sts.example")
    zones.add("sts.example", "@ MX 10 mx.sts.example.")
    zones.add("sts.example", "mx A 127.0.0.1")
    zones.add("sts.example", "mta-sts A %s" % policy.addr)
    zones.add("sts.example", '_mta-sts 1 IN TXT "v=STSv1; id=20240202;"')
    zones.reload()
    # The TXT record's TTL, and the relay's idle session and its
    # destination gone (it keeps a destination's answers meanwhile).
    time.sleep(6)
    world.send("dave@example.com")
    r = world.delivery("dave@example.com")
    assert r["status"] == "deferred" and "does not list" in r["reply"]
    assert policy.fetches == 2
    assert re.search(r"event=mta-sts-fetched domain=sts.example "
                     r"id=20240202", d.log())


def test_starttls_stripped_from_an_enforce_host_is_deferred(world, zones,
                                                            pki, sinks,
                                                            policy):
    s = sink(sinks, pki, tls=False)
    start_zones(zones)
    world.start("sts.example:%d" % s.port, "opportunistic")
    world.send()
    r = world.delivery()
    assert r["status"] == "deferred"
    assert r["reply"] == ("4.7.4 TLS required but not offered by "
                          "mx.sts.example[127.0.0.1]:%d (mta-sts: MTA-STS "
                          "policy (enforce) lists mx.sts.example)" % s.port)
    assert s.messages == []


def test_mta_sts_off_ignores_the_policy(world, zones, pki, sinks, policy):
    policy.set_policy("enforce", ["mail.sts.example"])
    s = sink(sinks, pki)
    start_zones(zones)
    world.start("sts.example:%d" % s.port, "opportunistic",
                conf="mta-sts off")
    world.send()
    s.wait(1)
    assert world.delivery(status="sent")["verified"] == "none"
    assert policy.fetches == 0


@pytest.mark.parametrize("fault,error", [
    ("redirect", "HTTP status 302"),
    ("status", "HTTP status 404"),
    ("ctype", "content type text/html"),
    ("syntax", "mode: not enforce, testing or none"),
    ("big", "policy larger than 64 KB"),
])
def test_a_bad_policy_is_no_policy(world, zones, pki, sinks, policy, fault,
                                   error):
    if fault == "redirect":
        policy.redirect_to = "https://mta-sts.sts.example/other"
    elif fault == "status":
        policy.policy = None
    elif fault == "ctype":
        policy.content_type = "text/html"
    elif fault == "syntax":
        policy.policy = ("version: STSv1\nmode: strict\nmx: mx.sts.example\n"
                         "max_age: 86400\n")
    else:
        policy.policy = "version: STSv1\n" + "x: y\n" * 20000
    s = sink(sinks, pki)
    start_zones(zones)
    d = world.start("sts.example:%d" % s.port, "opportunistic")
    world.send()
    s.wait(1)
    assert world.delivery(status="sent")["verified"] == "none"
    assert re.search(r"event=mta-sts-fetch-failed domain=sts.example "
                     r"id=20240101 error=\"%s" % re.escape(error), d.log())


def test_lookup_shows_the_mta_sts_policy(world, zones, pki, sinks, policy):
    s = sink(sinks, pki)
    start_zones(zones)
    d = world.start("sts.example:%d" % s.port, "opportunistic")
    r = d.ctl("lookup", "bob@example.com")
    assert r.returncode == 0, r.stdout + r.stderr
    assert ("host 1       10 mx.sts.example [127.0.0.1]: mta-sts (MTA-STS "
            "policy (enforce) lists mx.sts.example)\n") in r.stdout
    assert re.search(r"^dns          DNSSEC: not validated \(insecure\); "
                     r"MTA-STS: enforce, valid until \S+Z: policy id "
                     r"20240101 fetched \(mx: mx.sts.example\)$", r.stdout,
                     re.M), r.stdout


def test_dane_comes_before_mta_sts(world, zones, pki, sinks, policy):
    # A signed zone with TLSA records and an MTA-STS policy that does not
    # list its MX: DANE decides.
    port = free_port()
    cert = pki.issue("mx.both.example", selfsigned=True)
    zones.add_zone("both.example")
    zones.add("both.example", "@ MX 10 mx.both.example.")
    zones.add("both.example", "mx A 127.0.0.1")
    zones.add("both.example", "mta-sts A %s" % policy.addr)
    zones.add("both.example", '_mta-sts 1 IN TXT "v=STSv1; id=1;"')
    zones.add_tlsa("both.example", "mx.both.example", port, cert[0], 3, 1, 1)
    start_zones(zones)
    s = Sink(port, server_context(*cert))
    sinks.append(s)
    world.start("both.example:%d" % port, "dane")
    world.send()
    s.wait(1)
    assert world.delivery(status="sent")["verified"] == "dane"


def test_show_message_explains_a_queued_recipients_policy(world, zones, pki,
                                                          sinks, policy):
    policy.set_policy("enforce", ["mail.sts.example"])
    s = sink(sinks, pki)
    start_zones(zones)
    d = world.start("sts.example:%d" % s.port, "opportunistic",
                    conf="retry 10m to 1h expire 1d")
    qid = world.send()
    assert world.delivery()["status"] == "deferred"
    out = d.ctl("show", "message", qid).stdout
    assert re.search(r"deferred via mx.sts.example \[127.0.0.1\] tls=none "
                     r"verified=none: \"4.7.5 "
                     r"mx.sts.example\[127.0.0.1\]:\d+ not used: MTA-STS "
                     r"policy \(enforce\) does not list", out), out
    assert "tls for [127.0.0.1]" not in out
    assert re.search(r"^tls for sts.example:%d \(now\)\n"
                     r"tls          opportunistic \(the route's policy\)\n"
                     r"host 1       10 mx.sts.example \[127.0.0.1\]: refuse "
                     r"\(MTA-STS policy \(enforce\) does not list "
                     r"mx.sts.example as an MX host\)\n"
                     r"dns          DNSSEC: not validated \(insecure\); "
                     r"MTA-STS: enforce" % s.port, out, re.M), out
    j = d.ctl_json("show", "message", qid)
    assert j["tls"][0]["destination"] == "sts.example:%d" % s.port
    assert j["tls"][0]["tls"]["hosts"][0]["check"] == "refuse"
