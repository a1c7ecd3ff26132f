"""Options: declarations, the five sources and their precedence, every command-line form, errors."""

import os
import subprocess
import sys

import pytest

import netserver
from netserver.options import Config, Option, OptionError, Source, parse_argv, parse_conf_text
from netserver.options.validators import to_int


def configured(cls=netserver.Server, *, ctor=None, argv=(), run=None, conf=None, tmp_path=None, defaults=None):
    """Configure (no binding) a server from the given sources; returns its config."""
    if defaults is not None:
        cls = type("WithDefaults", (cls,), {"default_values": lambda self: dict(defaults)})
    server = cls(None, None, bind_and_activate=False, **(ctor or {}))
    run = dict(run or {})
    if conf is not None:
        path = tmp_path / "server.conf"
        path.write_text(conf)
        run.setdefault("conf_file", str(path))
    return server.configure(run, argv=list(argv))


def test_defaults_are_net_servers():
    config = configured()
    assert config.port == [20203]
    assert config.host == ["*"]
    assert config.ipv == ["*"]
    assert config.proto == ["tcp"]
    assert config.log_level == 2
    assert config.allow == [] and config.cidr_deny == []
    assert config.background is False
    assert config.source_of("port") == Source(Source.DEFAULT)


def test_precedence_first_source_wins(tmp_path):
    conf = "log_level 1\nsyslog_ident from_conf\nudp_recv_len 100\nlisten 7\n"
    config = configured(
        ctor={"log_level": 4},
        argv=["--log_level", "3", "--syslog_ident", "from_argv"],
        run={"log_level": 0, "syslog_ident": "from_run", "udp_recv_len": 200},
        conf=conf,
        tmp_path=tmp_path,
        defaults={"log_level": 2, "listen": 9, "udp_broadcast": True},
    )
    assert config.log_level == 4  # constructor beats everything
    assert config.source_of("log_level").kind == Source.CONSTRUCTOR
    assert config.syslog_ident == "from_argv"  # command line beats run()
    assert config.udp_recv_len == 200  # run() beats conf_file
    assert config.listen == 7  # conf_file beats default_values()
    assert config.source_of("listen").detail.endswith("line 4")
    assert config.udp_broadcast is True  # default_values() beats the declared default


def test_list_option_takes_all_values_from_first_source(tmp_path):
    conf = "port 1001\nport 1002\ncidr_allow 10.0.0.0/8\n"
    config = configured(argv=["--port", "2001", "--port=2002", "port=2003"], conf=conf, tmp_path=tmp_path)
    assert config.port == ["2001", "2002", "2003"]
    assert config.cidr_allow == ["10.0.0.0/8"]
    config = configured(conf=conf, tmp_path=tmp_path)
    assert config.port == ["1001", "1002"]


def test_list_given_in_code_counts_as_many():
    config = configured(run={"port": [1, 2, {"port": 3, "proto": "udp"}]})
    assert config.port == [1, 2, {"port": 3, "proto": "udp"}]


def test_conf_file_found_in_any_higher_source(tmp_path):
    path = tmp_path / "a.conf"
    path.write_text("log_level 3\n")
    assert configured(argv=[f"--conf_file={path}"]).log_level == 3
    assert configured(defaults={"conf_file": str(path)}).log_level == 3


@pytest.mark.parametrize("words, expected", [
    (["--port", "8080"], ["8080"]),
    (["--port=8080"], ["8080"]),
    (["-port", "8080"], ["8080"]),
    (["port=8080"], ["8080"]),
])
def test_command_line_forms(words, expected):
    assert configured(argv=words).port == expected


def test_flag_forms():
    assert configured(argv=["--background"]).background is True
    assert configured(argv=["--background", "0"]).background is False
    assert configured(argv=["--background=no"]).background is False
    config = configured(argv=["--setsid", "--port", "9"])
    assert config.setsid is True and config.port == ["9"]


def test_unknown_words_stay_in_sys_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["app", "--port", "8080", "--verbose", "input.txt", "log_level=3", "x=1"])
    server = netserver.Server(None, None, bind_and_activate=False)
    config = server.configure({})
    assert config.port == ["8080"] and config.log_level == 3
    assert sys.argv == ["app", "--verbose", "input.txt", "x=1"]


def test_parse_argv_keeps_order_of_rest():
    template = {"port": Option("port", multi=True)}
    entries, rest = parse_argv(["a", "--port", "1", "-v", "--", "b"], template)
    assert [e[1] for e in entries] == ["1"]
    assert rest == ["a", "-v", "--", "b"]


class WithOwnOptions(netserver.Server):
    def options(self, template):
        super().options(template)
        template["greeting"] = "hello"
        template["retries"] = 3
        template["verbose"] = False
        template["backends"] = []
        return template


def test_subclass_options_template(tmp_path):
    config = configured(WithOwnOptions, argv=["--retries", "5", "--verbose", "--backends", "a", "--backends", "b"],
                        conf="greeting hi there\n", tmp_path=tmp_path)
    assert config.greeting == "hi there"
    assert config.retries == 5
    assert config.verbose is True
    assert config.backends == ["a", "b"]
    with pytest.raises(OptionError, match=r"retries: 'many' from command line: must be a whole number"):
        configured(WithOwnOptions, argv=["--retries", "many"])


class WithDeclaredOption(netserver.Server):
    OPTIONS = (Option("workers", to_int(1, 8), 2, doc="Worker count."),)


def test_subclass_declares_options_like_the_built_ins():
    assert configured(WithDeclaredOption).workers == 2
    assert configured(WithDeclaredOption, argv=["--workers=4"]).workers == 4
    with pytest.raises(OptionError, match=r"workers: '9' from command line: must be 1\.\.8"):
        configured(WithDeclaredOption, argv=["--workers=9"])


@pytest.mark.parametrize("word, value", [("on", "1"), ("yes", "1"), ("true", "1"), ("off", "0"), ("no", "0"),
                                         ("1", "1"), ("double", "double"), ("Double-Debug", "double-debug")])
def test_reverse_lookups_takes_on_off_words_as_every_switch_does(word, value):
    """Net::Server's sample conf file writes ``reverse_lookups on``."""
    assert configured(argv=["--reverse_lookups", word]).reverse_lookups == value


@pytest.mark.parametrize("argv, message", [
    (["--port", "70000"], r"port: '70000' from command line: .*0\.\.65535"),
    (["--ipv", "5"], r"ipv: '5' from command line: .*4, 6 or \*"),
    (["--log_level", "9"], r"log_level: '9' from command line: must be 0\.\.4"),
    (["--user", "no-such-user-xyz"], r"user: 'no-such-user-xyz' from command line: no such user"),
    (["--group", "no-such-group-xyz"], r"group: 'no-such-group-xyz' from command line: no such group"),
    (["--cidr_allow", "10.0.0.0/33"], r"cidr_allow: '10.0.0.0/33' from command line"),
    (["--allow", "([a-z"], r"allow: '\(\[a-z' from command line"),
    (["--proto", "carrier-pigeon"], r"proto: 'carrier-pigeon' from command line: unknown protocol"),
    (["--chroot", "/no/such/dir"], r"chroot: '/no/such/dir' from command line: no such directory"),
    (["--reverse_lookups", "maybe"], r"reverse_lookups: 'maybe' from command line: must be on/off \(1/0, yes/no, true/false\) or one of double"),
    (["--background=perhaps"], r"background: 'perhaps' from command line: must be a boolean"),
    (["--conf_file", "/no/such/file.conf"], r"conf_file: '/no/such/file.conf' from command line: cannot read"),
    (["--sig_passthrough", "SIGNOPE"], r"sig_passthrough: 'SIGNOPE' from command line: unknown signal"),
])
def test_bad_values_name_option_value_and_source(argv, message):
    with pytest.raises(OptionError, match=message):
        configured(argv=argv)


@pytest.mark.parametrize("value, source, text", [
    ("9", "command line", "workers: '9' from command line: too many"),
    ("9", None, "workers: '9': too many"),
    (None, "conf_file x.conf line 2", "workers: from conf_file x.conf line 2: too many"),
    (None, None, "workers: too many"),  # a program's own check (guide.md's backends example)
])
def test_option_error_text_has_no_empty_fields(value, source, text):
    assert str(OptionError("workers", value, source, "too many")) == text


def test_each_value_of_a_repeated_option_keeps_its_source_until_code_changes_them():
    line2, line3 = Source(Source.CONF_FILE, "x.conf line 2"), Source(Source.CONF_FILE, "x.conf line 3")
    config = Config({"port": ["1", "2"], "allow": ["a"]}, {"port": line2, "allow": line2}, {"port": [line2, line3]})
    assert config.sources_of_each("port") == [line2, line3]
    assert config.sources_of_each("allow") == [line2]
    config.port.reverse()  # edited in place: the lines no longer say which is which
    assert config.sources_of_each("port") == [line2, line2]
    config.allow = ("a", "b")  # assigned, a tuple
    assert config.sources_of_each("allow") == [Source("set in code")] * 2


def test_an_app_module_shadowed_by_a_standard_one_is_named(tmp_path, monkeypatch):
    """``--app site:app`` with a ./site.py: Python's own ``site`` is already loaded."""
    from netserver.options.validators import import_dotted

    (tmp_path / "site.py").write_text("def app(environ, start_response):\n    return []\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError) as error:
        import_dotted("site:app")
    assert "site has no attribute app" in str(error.value) and "rename yours" in str(error.value)
    with pytest.raises(ValueError) as plain:
        import_dotted("os:no_such_thing")
    assert str(plain.value) == "os has no attribute no_such_thing"


def test_bad_value_in_conf_file_names_file_and_line(tmp_path):
    with pytest.raises(OptionError) as info:
        configured(conf="# comment\n\nlog_level 2\nport 99999\n", tmp_path=tmp_path)
    assert str(info.value) == f"port: '99999' from conf_file {tmp_path / 'server.conf'} line 4: " \
        "port must be 0..65535"


@pytest.mark.parametrize("text, message", [
    ("port\n", r"port: from conf_file x\.conf line 1: needs a value"),
    ("prot 80\n", r"prot: '80' from conf_file x\.conf line 1: unknown option"),
    ("%% nonsense\n", r"from conf_file x\.conf line 1: malformed line"),
])
def test_malformed_conf_lines(text, message):
    from netserver.options.core import OPTIONS
    template = {o.name: o for o in OPTIONS}
    with pytest.raises(OptionError, match=message):
        parse_conf_text(text, "x.conf", template)


def test_conf_file_comments_blank_lines_and_values_with_spaces():
    from netserver.options.core import OPTIONS
    template = {o.name: o for o in OPTIONS}
    entries = parse_conf_text("# c\n\n   # indented comment\nport   localhost, 20203, tcp  \nbackground\n",
                              "x", template)
    assert [(k, v) for k, v, _ in entries] == [("port", "localhost, 20203, tcp"), ("background", "1")]


def test_unreadable_conf_file(tmp_path):
    path = tmp_path / "secret.conf"
    path.write_text("log_level 3\n")
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads anything: use a directory instead
        path = tmp_path
    with pytest.raises(OptionError, match=r"conf_file: .* from run\(\) arguments: cannot read"):
        configured(run={"conf_file": str(path)})


def test_unknown_option_in_code_is_an_error():
    with pytest.raises(OptionError, match=r"prot: 'udp' from run\(\) arguments: unknown option"):
        configured(run={"prot": "udp"})
    with pytest.raises(OptionError, match=r"from constructor arguments: unknown option"):
        configured(ctor={"prot": "udp"})


def test_config_attribute_access_and_assignment():
    config = configured()
    config.log_level = 4
    assert config.log_level == 4
    assert config.source_of("log_level").kind == "set in code"
    with pytest.raises(AttributeError):
        _ = config.no_such_option


def test_multitype_accepts_every_personalitys_options():
    config = configured(netserver.MultiType, argv=["--server_type", "INET", "--server_type", "Single"])
    assert config.server_type == ["INET", "Single"]
    with pytest.raises(OptionError, match=r"server_type: 'Nope' from command line: not a personality"):
        configured(netserver.MultiType, argv=["--server_type", "Nope"])


def test_option_docs_are_generated_and_current():
    from netserver.docgen import reference_sections
    from netserver.options.reference import format_markdown
    path = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "options.md")
    with open(path) as f:
        assert f.read() == format_markdown(reference_sections()), \
            "docs/options.md is stale: python -m netserver.docgen docs/options.md"


def test_option_docs_are_not_generated_without_a_personality(tmp_path):
    """Without httptools the HTTP personality cannot load: docgen says so and writes nothing,
    rather than a page without HTTP's options."""
    page = tmp_path / "options.md"
    page.write_text("the page as it was\n")
    code = f"import sys; sys.modules['httptools'] = None\nfrom netserver.docgen import main\nmain([{str(page)!r}])"
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and out.stdout == ""
    assert "netserver.docgen:" in out.stderr and "HTTP" in out.stderr and "httptools" in out.stderr, out.stderr
    assert page.read_text() == "the page as it was\n"  # not emptied, as `> docs/options.md` would


@pytest.mark.parametrize("server_type,expected", [("PreFork", 50), ("PreForkSimple", 50), ("Fork", 256)])
def test_multitype_and_http_take_the_chosen_personalitys_defaults(server_type, expected):
    """``netserver HTTP --server_type PreFork`` runs PreFork's 50 children at most, not Fork's 256."""
    from netserver.http import HTTP

    for cls in (netserver.MultiType, HTTP):
        config = configured(cls, argv=["--server_type", server_type])
        assert config.max_servers == expected, (cls, server_type)
        assert config.source_of("max_servers").kind == "default"
    config = configured(HTTP, argv=["--server_type", "PreFork", "--max_servers", "300"])
    assert config.max_servers == 300


def test_multitype_and_http_configure_take_the_run_source():
    """``configure(run_options, argv, run_source)`` is Server's signature; MultiType and HTTP
    dropped ``run_source`` (a TypeError for a caller naming where run options come from)."""
    from netserver.http import HTTP

    for cls in (netserver.Server, netserver.MultiType, HTTP):
        server = cls(None, None, bind_and_activate=False)
        config = server.configure({"log_level": 1}, argv=[], run_source=Source("class attribute"))
        assert config.log_level == 1
        assert config.source_of("log_level") == Source("class attribute"), cls


def test_http_default_port_is_net_server_https():
    """``net-server http``: 8080, or 80 when started as root; any port given wins."""
    from netserver.http import HTTP

    assert configured(HTTP).port == [80 if os.geteuid() == 0 else 8080]
    assert configured(HTTP).source_of("port").kind == "default"  # still "not configured" (systemd)
    assert configured(HTTP, argv=["--port", "9999"]).port == ["9999"]
    assert configured(netserver.MultiType).port == [20203]
