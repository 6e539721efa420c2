#!/usr/bin/env python3
"""A local stand-in for Azure Resource Manager and the Microsoft identity platform.

No ARM emulator exists, so this serves the documented responses tandem reads:
  POST /{tenant}/oauth2/v2.0/token              client-credentials grant
  GET  /metadata/identity/oauth2/token           managed identity (instance metadata)
  GET  .../resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines   (paged, nextLink)
  GET  .../resourceGroups/{rg}/providers/Microsoft.Network/networkInterfaces (paged)
  GET  .../resourceGroups/{rg}/providers/Microsoft.Network/publicIPAddresses
  GET  {nic id}                                  one network interface
It listens on 127.0.0.1 only, prints its port on the first line of stdout, and appends
one JSON line per request to the log file (method, path, status, monotonic time
in seconds; never a secret).

Usage: arm_server.py CONFIG.json LOG.jsonl

CONFIG: {"tenant", "client_id", "client_secret", "subscription", "page_size",
         "groups": {"rg": [{"name", "tags", "power", "private_ip", "public_ip",
                             "nic_group"}]},
         "throttle": {"match": "virtualMachines", "times": 1, "retry_after": 1},
         "refuse_tokens": false, "reject_first_token": false, "down": false,
         "managed_identity": false}
"""
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CONFIG = json.load(open(sys.argv[1]))
LOG = open(sys.argv[2], "a", buffering=1)
LOCK = threading.Lock()
STATE = {"tokens": [], "throttled": 0}


def vm_id(sub, rg, name):
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"


def nic_id(sub, rg, name):
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/networkInterfaces/{name}-nic"


def pip_id(sub, rg, name):
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/publicIPAddresses/{name}-ip"


def vm_json(sub, rg, vm):
    nic_rg = vm.get("nic_group", rg)
    return {
        "id": vm_id(sub, rg, vm["name"]),
        "name": vm["name"],
        "type": "Microsoft.Compute/virtualMachines",
        "location": vm.get("location", "westus"),
        "tags": vm.get("tags", {}),
        "properties": {
            "vmId": str(uuid.uuid5(uuid.NAMESPACE_URL, vm["name"])),
            "hardwareProfile": {"vmSize": "Standard_B2s"},
            "provisioningState": "Succeeded",
            "networkProfile": {
                "networkInterfaces": [
                    {"id": nic_id(sub, nic_rg, vm["name"]), "properties": {"primary": True}}
                ]
            },
            "instanceView": {
                "statuses": [
                    {"code": "ProvisioningState/succeeded", "level": "Info"},
                    {"code": "PowerState/" + vm.get("power", "running"), "level": "Info"},
                ]
            },
        },
    }


def nic_json(sub, rg, vm):
    config = {"privateIPAddress": vm.get("private_ip"), "primary": True,
              "privateIPAllocationMethod": "Static"}
    if vm.get("public_ip"):
        config["publicIPAddress"] = {"id": pip_id(sub, rg, vm["name"])}
    return {
        "id": nic_id(sub, rg, vm["name"]),
        "name": vm["name"] + "-nic",
        "properties": {
            "ipConfigurations": [{"name": "ipconfig1", "properties": config}],
            "virtualMachine": {"id": vm_id(sub, rg, vm["name"])},
        },
    }


def all_vms():
    for rg, vms in CONFIG.get("groups", {}).items():
        for vm in vms:
            yield rg, vm


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        LOG.write(json.dumps({"method": self.command, "path": self.path, "status": status,
                              "t": time.monotonic()}) + "\n")

    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        parts = urlsplit(self.path).path.strip("/").split("/")
        if len(parts) != 4 or parts[1:] != ["oauth2", "v2.0", "token"]:
            return self.reply(404, {"error": "not_found"})
        if CONFIG.get("refuse_tokens") or parts[0] != CONFIG["tenant"] \
                or form.get("client_id") != CONFIG["client_id"] \
                or form.get("client_secret") != CONFIG["client_secret"]:
            return self.reply(401, {"error": "invalid_client",
                                    "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 0"})
        if form.get("grant_type") != "client_credentials" or not form.get("scope", "").endswith("/.default"):
            return self.reply(400, {"error": "invalid_request", "error_description": "AADSTS900144: bad grant"})
        token = uuid.uuid4().hex
        with LOCK:
            STATE["tokens"].append(token)
        self.reply(200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                         "access_token": token})

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/metadata/identity/oauth2/token":
            # The instance metadata service of a VM with a managed identity.
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if self.headers.get("metadata") != "true" or not CONFIG.get("managed_identity"):
                return self.reply(400, {"error": "invalid_request", "error_description": "Required metadata header not specified"})
            if not query.get("resource") or query.get("api-version") != "2018-02-01":
                return self.reply(400, {"error": "invalid_resource", "error_description": "bad resource"})
            token = uuid.uuid4().hex
            with LOCK:
                STATE["tokens"].append(token)
            return self.reply(200, {"access_token": token, "expires_in": "86399", "token_type": "Bearer",
                                    "resource": query["resource"]})
        if CONFIG.get("down"):
            return self.reply(503, {"error": {"code": "ServiceUnavailable", "message": "down"}})
        auth = self.headers.get("authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        with LOCK:
            tokens = list(STATE["tokens"])
        valid = tokens[1:] if CONFIG.get("reject_first_token") else tokens
        if token not in valid:
            return self.reply(401, {"error": {"code": "ExpiredAuthenticationToken",
                                              "message": "The access token expiry UTC time is earlier than current UTC time."}})
        throttle = CONFIG.get("throttle")
        if throttle and throttle["match"] in self.path:
            with LOCK:
                hit = STATE["throttled"] < throttle.get("times", 1)
                if hit:
                    STATE["throttled"] += 1
            if hit:
                return self.reply(429, {"error": {"code": "TooManyRequests", "message": "throttled"}},
                                  [("Retry-After", str(throttle.get("retry_after", 1)))])
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if "api-version" not in query:
            return self.reply(400, {"error": {"code": "MissingApiVersionParameter", "message": "api-version"}})
        parts = url.path.strip("/").split("/")
        sub = CONFIG["subscription"]
        if len(parts) < 4 or parts[0] != "subscriptions" or parts[1] != sub or parts[2] != "resourceGroups":
            return self.reply(404, {"error": {"code": "SubscriptionNotFound", "message": "no such subscription"}})
        rg = parts[3]
        kind = "/".join(parts[5:7]) if len(parts) >= 7 else ""
        base = f"http://{self.headers['host']}"
        if len(parts) == 8 and kind == "Microsoft.Network/networkInterfaces":
            for vrg, vm in all_vms():
                if nic_id(sub, vm.get("nic_group", vrg), vm["name"]).lower() == url.path.lower():
                    return self.reply(200, nic_json(sub, vm.get("nic_group", vrg), vm))
            return self.reply(404, {"error": {"code": "NotFound", "message": "no such nic"}})
        if len(parts) != 7:
            return self.reply(404, {"error": {"code": "NotFound", "message": url.path}})
        if kind == "Microsoft.Compute/virtualMachines":
            items = [vm_json(sub, rg, vm) for vrg, vm in all_vms() if vrg == rg]
        elif kind == "Microsoft.Network/networkInterfaces":
            items = [nic_json(sub, rg, vm) for vrg, vm in all_vms() if vm.get("nic_group", vrg) == rg]
        elif kind == "Microsoft.Network/publicIPAddresses":
            items = [{"id": pip_id(sub, rg, vm["name"]), "properties": {"ipAddress": vm["public_ip"]}}
                     for vrg, vm in all_vms() if vrg == rg and vm.get("public_ip")]
        else:
            return self.reply(404, {"error": {"code": "NotFound", "message": kind}})
        if rg not in CONFIG.get("groups", {}) and not items:
            return self.reply(404, {"error": {"code": "ResourceGroupNotFound",
                                              "message": f"Resource group '{rg}' could not be found."}})
        size = CONFIG.get("page_size", 100)
        skip = int(query.get("$skiptoken", "0"))
        body = {"value": items[skip:skip + size]}
        if skip + size < len(items):
            rest = "&".join(f"{k}={v}" for k, v in query.items() if k != "$skiptoken")
            body["nextLink"] = f"{base}{url.path}?{rest}&$skiptoken={skip + size}"
        self.reply(200, body)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
