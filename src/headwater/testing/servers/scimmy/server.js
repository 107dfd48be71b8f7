// An in-memory SCIM 2.0 server for tests: Users and Groups are scimmy's own resource types,
// backed by the ingress/egress/degress handlers below, and served by scimmy-routers' express
// middleware under /scim/v2 (ServiceProviderConfig, Schemas and ResourceTypes as scimmy
// generates them).
//
//   node server.js (--port P | --fd N) [--host H] [--bearer-token=T ...]
//
// --fd serves on an inherited listening socket (the test runner binds it, so no port race).
// Without --bearer-token every request is accepted. It runs until SIGTERM or SIGINT.
import {randomUUID, timingSafeEqual} from "node:crypto";
import {parseArgs} from "node:util";
import express from "express";
import SCIMMY from "scimmy";
import SCIMMYRouters from "scimmy-routers";

const {values: options} = parseArgs({
    options: {
        host: {type: "string", default: "127.0.0.1"},
        port: {type: "string"},
        fd: {type: "string"},
        "bearer-token": {type: "string", multiple: true, default: []},
    },
});
if ((options.port === undefined) === (options.fd === undefined)) {
    console.error("server.js: give exactly one of --port and --fd");
    process.exit(2);
}

// Resources by id, as plain JSON: what the "in" schema kept of a write, plus id and meta.
const users = new Map();
const groups = new Map();

const notFound = (id) => new SCIMMY.Types.Error(404, null, `Resource ${id} not found`);
const plain = (instance) => JSON.parse(JSON.stringify(instance));

// What egress hands scimmy: one resource when the request names an id, else every resource
// the filter matches (scimmy's ListResponse sorts and pages them).
function select(store, resource, view = (item) => item) {
    if (resource.id !== undefined) {
        const item = store.get(resource.id);
        if (item === undefined) throw notFound(resource.id);
        return view(item);
    }
    const all = [...store.values()].map(view);
    return resource.filter ? resource.filter.match(all) : all;
}

// Store a create (no id yet) or a full replacement (PUT, and PATCH, which scimmy applies to
// the current resource and writes back whole).
function save(store, resource, instance) {
    const now = new Date().toISOString();
    const previous = resource.id === undefined ? undefined : store.get(resource.id);
    if (resource.id !== undefined && previous === undefined) throw notFound(resource.id);
    const id = previous?.id ?? randomUUID();
    const item = {
        ...plain(instance),
        id,
        meta: {created: previous?.meta.created ?? now, lastModified: now},
    };
    store.set(id, item);
    return item;
}

// A user's groups are read-only in SCIM: derived from the groups' members when read.
function withGroups(user) {
    const memberOf = [...groups.values()]
        .filter((group) => (group.members ?? []).some((member) => member.value === user.id))
        .map((group) => ({value: group.id, display: group.displayName, type: "direct"}));
    return memberOf.length ? {...user, groups: memberOf} : user;
}

SCIMMY.Resources.declare(SCIMMY.Resources.User)
    .egress((resource) => select(users, resource, withGroups))
    .ingress((resource, instance) => {
        // userName is unique and case-insensitive (RFC 7643 section 4.1.1).
        const name = String(instance.userName).toLowerCase();
        for (const other of users.values()) {
            if (other.id !== resource.id && other.userName.toLowerCase() === name) {
                throw new SCIMMY.Types.Error(409, "uniqueness", `userName ${instance.userName} is taken`);
            }
        }
        return withGroups(save(users, resource, instance));
    })
    .degress((resource) => {
        if (!users.delete(resource.id)) throw notFound(resource.id);
        // A deleted user leaves every group it was in.
        for (const group of groups.values()) {
            if (group.members) group.members = group.members.filter((m) => m.value !== resource.id);
        }
    });

SCIMMY.Resources.declare(SCIMMY.Resources.Group)
    .egress((resource) => select(groups, resource))
    .ingress((resource, instance) => save(groups, resource, instance))
    .degress((resource) => {
        if (!groups.delete(resource.id)) throw notFound(resource.id);
    });

const tokens = options["bearer-token"].map((token) => Buffer.from(token));
function authenticate(request) {
    if (!tokens.length) return "scim-client";
    const [scheme, token = ""] = (request.header("Authorization") ?? "").split(" ", 2);
    const given = Buffer.from(token);
    const known = tokens.some((t) => t.length === given.length && timingSafeEqual(t, given));
    if (scheme.toLowerCase() !== "bearer" || !known) throw new Error("Invalid bearer token");
    return "scim-client";
}

const app = express();
app.disable("x-powered-by");
app.use("/scim/v2", new SCIMMYRouters({
    type: "bearer",
    handler: authenticate,
    // Locations name the address the client used (a proxy in front keeps the Host header).
    baseUri: (request) => `${request.protocol}://${request.get("host")}`,
}));

const server = app.listen(
    options.fd !== undefined ? {fd: Number(options.fd)} : {host: options.host, port: Number(options.port)},
);
// Idle keep-alive connections outlive any test: a server closing one just as the client
// reuses it would show up as a spurious transport error (node's default is 5 s).
server.keepAliveTimeout = 120_000;
server.headersTimeout = 121_000;
server.on("error", (error) => {
    console.error(error);
    process.exit(1);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
    process.on(signal, () => {
        server.close(() => process.exit(0));
        server.closeAllConnections();
    });
}
