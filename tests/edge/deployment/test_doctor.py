"""`emoedge doctor` (emoedge.edge.deployment.doctor) on fake /proc and /sys trees, on this machine, and its warning for
the untested Coral profiles."""


import pytest

from emoedge.edge.deployment.doctor import FAIL, OK, WARN, diagnose


def _tree(tmp_path, model=None, governor="ondemand", temp_mc=48000, throttled=None, usb=None, apex=False,
          edgetpu_lib=False, videos=()):
    root = tmp_path / "root"
    if model:
        (root / "proc/device-tree").mkdir(parents=True)
        (root / "proc/device-tree/model").write_text(model + "\x00")
    cpu = root / "sys/devices/system/cpu/cpu0/cpufreq"
    cpu.mkdir(parents=True)
    (cpu / "scaling_governor").write_text(governor + "\n")
    tz = root / "sys/class/thermal/thermal_zone0"
    tz.mkdir(parents=True)
    (tz / "temp").write_text(f"{temp_mc}\n")
    if throttled is not None:
        fw = root / "sys/devices/platform/soc/soc:firmware"
        fw.mkdir(parents=True)
        (fw / "get_throttled").write_text(throttled + "\n")
    if usb:
        d = root / "sys/bus/usb/devices/2-1"
        d.mkdir(parents=True)
        (d / "idVendor").write_text(usb[0] + "\n")
        (d / "idProduct").write_text(usb[1] + "\n")
    (root / "dev").mkdir(parents=True, exist_ok=True)
    if apex:
        (root / "dev/apex_0").write_text("")
    for v in videos:
        (root / "dev" / v).write_text("")
    if edgetpu_lib:
        lib = root / "usr/lib/aarch64-linux-gnu"
        lib.mkdir(parents=True)
        (lib / "libedgetpu.so.1").write_text("")
    return root


def _by_name(checks):
    return {c.name: c for c in checks}


def test_doctor_pi4_missing_camera_stack_and_throttled(tmp_path, tiny_tflite):
    root = _tree(tmp_path, model="Raspberry Pi 4 Model B Rev 1.4", governor="powersave", temp_mc=82500,
                 throttled="0x50005", videos=("video0",))
    c = _by_name(diagnose(root, profile="rpi4", model=str(tiny_tflite), have_picamera2=False))
    assert c["board"].detail == "Raspberry Pi 4 Model B Rev 1.4"
    assert c["pi camera stack"].status == FAIL and "python3-picamera2" in c["pi camera stack"].fix
    assert c["cpu governor"].status == WARN and c["temperature"].status == WARN
    assert c["throttling"].status == FAIL and "under-voltage now" in c["throttling"].detail
    assert c["profile"].status == OK and "profile board" not in c
    assert c["model"].status == OK


def test_doctor_pi5_healthy_with_picamera2(tmp_path, tiny_tflite):
    root = _tree(tmp_path, model="Raspberry Pi 5 Model B Rev 1.0", throttled="0x0")
    c = _by_name(diagnose(root, profile="rpi5", model=str(tiny_tflite), have_picamera2=True))
    assert c["pi camera stack"].status == OK and c["throttling"].status == OK
    assert c["edge tpu"].status != FAIL and "profile board" not in c
    wrong = _by_name(diagnose(root, profile="rpi4", model=str(tiny_tflite), have_picamera2=True))
    assert wrong["profile board"].status == WARN


def test_doctor_coral_dev_board(tmp_path, tiny_tflite):
    root = _tree(tmp_path, model="Freescale i.MX8MQ Phanbell", apex=True, edgetpu_lib=True, videos=("video0",))
    c = _by_name(diagnose(root, profile="coral-devboard", model=str(tiny_tflite), model_format="float32",
                          have_picamera2=False))
    assert c["edge tpu"].status == OK and "/dev/apex_0" in c["edge tpu"].detail
    assert c["pi camera stack"].status != FAIL           # not a Pi: the Pi stack is not expected
    assert c["v4l2 cameras"].detail == "/dev/video0"
    no_rt = _tree(tmp_path / "x", model="Raspberry Pi 4 Model B", usb=("18d1", "9302"))
    c = _by_name(diagnose(no_rt, profile="rpi4-coral-usb", model=str(tiny_tflite), have_picamera2=True))
    assert c["edge tpu"].status == FAIL and "libedgetpu1-std" in c["edge tpu"].fix
    assert c["delegate"].status == FAIL


def test_doctor_on_this_machine_reports_no_pi_camera_and_no_edgetpu(tiny_tflite):
    c = _by_name(diagnose("/", profile="x86-dev", model=str(tiny_tflite)))
    assert c["edge tpu"].status != OK
    assert c["pi camera stack"].status != OK
    assert c["tflite interpreter"].status == OK


CORAL = ("coral-devboard", "rpi4-coral-usb")


@pytest.mark.parametrize("name", CORAL)
def test_doctor_warns_that_the_profile_is_untested(tmp_path, name):
    checks = {c.name: c for c in diagnose(tmp_path, profile=name, have_picamera2=False)}
    assert checks["untested"].status == WARN and "UNTESTED profile" in checks["untested"].line()
    assert "untested" not in {c.name for c in diagnose(tmp_path, profile="rpi4", have_picamera2=False)}
