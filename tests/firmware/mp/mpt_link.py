# The MQTT link's packets and backoff, under CPython and MicroPython (run by mpunit).
# Behaviour (queueing, stalls, drops, redelivery) is in link_check.py / test_link_async.py,
# against a real Mosquitto in test_link_mqtt.py.
from navseal_fw.link_mqtt import MqttLink
from navseal_fw.mqtt_wire import connect_packet, packet


def test_connect_packet_is_persistent_session():
    assert connect_packet("seal-1001", 60) == b"\x10\x15\x00\x04MQTT\x04\x00\x00\x3c\x00\x09seal-1001"


def test_connect_packet_with_login():
    p = connect_packet("seal-7", 30, user="7", password="pw")
    assert p[0] == 0x10 and p[9] == 0xC0  # user name and password flags, clean session off
    assert p.endswith(b"\x00\x01" + b"7" + b"\x00\x02pw")


def test_remaining_length_takes_two_bytes_past_127():
    p = packet(0x32, b"x" * 200)
    assert p[0:3] == b"\x32\xc8\x01" and len(p) == 203


def test_backoff_capped_with_jitter_range():
    link = MqttLink(1, None, lambda f: None, backoff_ms=1000, backoff_cap_ms=8000,
                    rand=lambda n: n - 1)
    delays = []
    for attempts in range(6):
        link.attempts = attempts
        delays.append(link._delay())
    assert delays == [1000, 2000, 4000, 8000, 8000, 8000], delays
    low = MqttLink(1, None, lambda f: None, backoff_ms=1000, backoff_cap_ms=8000, rand=lambda n: 0)
    low.attempts = 3
    assert low._delay() == 4000  # bottom of [d/2, d]


def test_send_refused_while_down():
    link = MqttLink(1, None, lambda f: None)
    assert link.send(b"x") is False and link.refused == 1
