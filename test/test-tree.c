/* The multi-level tree of the TypeScript suite "CommandRegistry Multi-Level
 * Tree" (PROTOCOL.md section 4), over in-memory channels on one loop:
 *
 *            main
 *          /   |   \
 *    sandbox worker2 worker3
 *       |        \____/ (direct peer link sandbox <-> worker3)
 *   subworker
 */
#include <string.h>

#include "testutil.h"

static uv_loop_t loop;
static cmdipc_registry_t *rmain, *sandbox, *subworker, *worker2, *worker3;

static void tree_setup(void) {
    ASSERT_OK(uv_loop_init(&loop));
    rmain = tu_registry(&loop, "main", NULL);
    sandbox = tu_registry(&loop, "sandbox", "main");
    subworker = tu_registry(&loop, "subworker", "sandbox");
    worker2 = tu_registry(&loop, "worker2", "main");
    worker3 = tu_registry(&loop, "worker3", "main");
    tu_link(rmain, sandbox);
    tu_link(sandbox, subworker);
    tu_link(rmain, worker2);
    tu_link(rmain, worker3);
    tu_link(sandbox, worker3);
    tu_settle(&loop);
}

static void tree_teardown(void) {
    tu_close_all(&loop, rmain, sandbox, subworker, worker2, worker3, NULL);
}

TEST(grandchild_command_is_registered_up_to_root) {
    tree_setup();
    tu_register(&loop, subworker, "sub.double", tu_add_fn, NULL);
    ASSERT(tu_has_command(subworker, "sub.double"));
    ASSERT(tu_has_command(sandbox, "sub.double"));
    ASSERT(tu_has_command(rmain, "sub.double"));
    ASSERT(!tu_has_command(worker2, "sub.double"));
    tree_teardown();
}

TEST(root_executes_command_on_grandchild) {
    tu_result_t res = {0};
    tree_setup();
    tu_register(&loop, subworker, "sub.double", tu_add_fn, NULL);
    ASSERT_OK(tu_call(&loop, rmain, "sub.double", "{\"a\":4,\"b\":4}", &res));
    ASSERT_EQ(json_integer_value(res.result), 8);
    tu_result_clear(&res);
    tree_teardown();
}

TEST(sibling_branch_executes_grandchild_through_root) {
    tu_result_t res = {0};
    tree_setup();
    tu_register(&loop, subworker, "sub.double", tu_add_fn, NULL);
    ASSERT_OK(tu_call(&loop, worker2, "sub.double", "{\"a\":5,\"b\":5}", &res));
    ASSERT_EQ(json_integer_value(res.result), 10);
    /* The route went worker2 -> main -> sandbox -> subworker. */
    cmdipc_stats_t s;
    cmdipc_registry_stats(rmain, &s);
    ASSERT_EQ(s.forwarded, 1);
    cmdipc_registry_stats(sandbox, &s);
    ASSERT_EQ(s.forwarded, 1);
    cmdipc_registry_stats(subworker, &s);
    ASSERT_EQ(s.handled, 1);
    tu_result_clear(&res);
    tree_teardown();
}

TEST(grandchild_executes_sibling_branch_through_parent_chain) {
    tu_result_t res = {0};
    tree_setup();
    tu_register(&loop, worker2, "w2.echo", tu_echo_fn, NULL);
    ASSERT_OK(tu_call(&loop, subworker, "w2.echo", "{\"from\":\"sub\"}", &res));
    ASSERT_STR_EQ(json_string_value(json_object_get(res.result, "from")), "sub");
    tu_result_clear(&res);
    tree_teardown();
}

static int dup_status = 1, dup_calls;
static void dup_cb(cmdipc_registry_t *r, int status, const char *id, void *data) {
    (void)r;
    (void)id;
    (void)data;
    dup_status = status;
    dup_calls++;
}

TEST(duplicate_command_registration_fails_across_tree) {
    cmdipc_command_def_t def = {CMDIPC_COMMAND_DEF_VERSION, "sub.double", NULL, NULL};
    tree_setup();
    tu_register(&loop, subworker, "sub.double", tu_add_fn, NULL);
    ASSERT_OK(cmdipc_registry_register(worker2, &def, tu_add_fn, NULL, dup_cb, NULL));
    tu_settle(&loop);
    ASSERT_EQ(dup_calls, 1);
    ASSERT_STATUS(CMDIPC_EDUPLICATE, dup_status);
    ASSERT(!tu_has_command(worker2, "sub.double"));
    /* The original owner still serves it for everyone. */
    tu_result_t res = {0};
    ASSERT_OK(tu_call(&loop, worker2, "sub.double", "{\"a\":1,\"b\":1}", &res));
    ASSERT_EQ(json_integer_value(res.result), 2);
    tu_result_clear(&res);
    tree_teardown();
}

static void listen_all(tu_events_t ev[5]) {
    cmdipc_registry_t *all[5] = {rmain, sandbox, subworker, worker2, worker3};
    for (int i = 0; i < 5; i++)
        ASSERT_OK(cmdipc_registry_on(all[i], "tree.ping", tu_event_cb, &ev[i], NULL));
}

TEST(events_propagate_through_tree_with_peer_links_exactly_once) {
    tu_events_t ev[5];
    memset(ev, 0, sizeof(ev));
    tree_setup();
    listen_all(ev);
    json_t *p = tu_json("{\"n\":1}");
    ASSERT_OK(cmdipc_registry_emit(subworker, "tree.ping", p));
    tu_settle(&loop);
    for (int i = 0; i < 5; i++) {
        ASSERT_EQ(ev[i].count, 1);
        ASSERT_JSON_EQ(ev[i].last, p);
        tu_events_clear(&ev[i]);
    }
    /* The cycle main - sandbox - worker3 - main made duplicates arrive and be
     * dropped. */
    uint64_t dups = 0;
    cmdipc_registry_t *all[5] = {rmain, sandbox, subworker, worker2, worker3};
    for (int i = 0; i < 5; i++) {
        cmdipc_stats_t s;
        cmdipc_registry_stats(all[i], &s);
        dups += s.dropped[CMDIPC_DROP_DUPLICATE_EVENT];
    }
    ASSERT_GE(dups, 1);
    json_decref(p);
    tree_teardown();
}

TEST(events_from_worker3_reach_all_processes_exactly_once) {
    tu_events_t ev[5];
    memset(ev, 0, sizeof(ev));
    tree_setup();
    listen_all(ev);
    for (int k = 0; k < 10; k++)
        ASSERT_OK(cmdipc_registry_emit(worker3, "tree.ping", NULL));
    tu_settle(&loop);
    for (int i = 0; i < 5; i++) {
        ASSERT_EQ(ev[i].count, 10);
        ASSERT_NULL(ev[i].last);
    }
    tree_teardown();
}

TEST(worker3_executes_grandchild_command_via_the_tree) {
    tu_result_t res = {0};
    tree_setup();
    tu_register(&loop, subworker, "sub.double", tu_add_fn, NULL);
    ASSERT_OK(tu_call(&loop, worker3, "sub.double", "{\"a\":3,\"b\":3}", &res));
    ASSERT_EQ(json_integer_value(res.result), 6);
    tu_result_clear(&res);
    tree_teardown();
}

TEST(worker3_registers_and_grandchild_executes_it) {
    tu_result_t res = {0};
    tree_setup();
    tu_register(&loop, worker3, "w3.echo", tu_echo_fn, NULL);
    ASSERT(tu_has_command(rmain, "w3.echo"));
    ASSERT_OK(tu_call(&loop, subworker, "w3.echo", "[1,2,3]", &res));
    ASSERT_EQ(json_array_size(res.result), 3);
    tu_result_clear(&res);
    tree_teardown();
}

TEST(command_not_found_at_root) {
    tu_result_t res = {0};
    tree_setup();
    ASSERT_STATUS(CMDIPC_ENOTFOUND, tu_call(&loop, rmain, "nope", NULL, &res));
    tu_result_clear(&res);
    tree_teardown();
}

TEST(command_not_found_travels_back_to_grandchild) {
    tu_result_t res = {0};
    tree_setup();
    ASSERT_STATUS(CMDIPC_ENOTFOUND, tu_call(&loop, subworker, "nope", NULL, &res));
    ASSERT(strstr(res.message, "nope") != NULL);
    tu_result_clear(&res);
    tree_teardown();
}

TEST(late_joiner_learns_peer_commands_by_list_exchange) {
    /* A registry linked to main after main registered a command learns it
     * through the list exchange on attach and calls it directly. */
    tu_result_t res = {0};
    tree_setup();
    tu_register(&loop, rmain, "main.echo", tu_echo_fn, NULL);
    cmdipc_registry_t *late = tu_registry(&loop, "late", NULL);
    tu_link(rmain, late);
    tu_settle(&loop);
    ASSERT(tu_has_command(late, "main.echo"));
    ASSERT_OK(tu_call(&loop, late, "main.echo", "\"hi\"", &res));
    ASSERT_STR_EQ(json_string_value(res.result), "hi");
    tu_result_clear(&res);
    tu_close_all(&loop, rmain, sandbox, subworker, worker2, worker3, late, NULL);
}

TEST(commands_registered_before_router_attach_are_escalated) {
    /* Decision 7: registrations made while the router is absent are
     * escalated when it attaches, in registration order. */
    tu_result_t res = {0};
    ASSERT_OK(uv_loop_init(&loop));
    rmain = tu_registry(&loop, "main", NULL);
    cmdipc_registry_t *child = tu_registry(&loop, "child", "main");
    tu_register(&loop, child, "c.one", tu_echo_fn, NULL);
    tu_register(&loop, child, "c.two", tu_echo_fn, NULL);
    tu_register(&loop, child, "_c.private", tu_echo_fn, NULL);
    tu_link(rmain, child);
    tu_settle(&loop);
    ASSERT(tu_has_command(rmain, "c.one"));
    ASSERT(tu_has_command(rmain, "c.two"));
    ASSERT(!tu_has_command(rmain, "_c.private"));
    ASSERT_OK(tu_call(&loop, rmain, "c.two", "2", &res));
    tu_result_clear(&res);
    tu_close_all(&loop, rmain, child, NULL);
}

TEST(router_reattach_reescalates_and_children_commands_travel_up) {
    /* mid's router is top; leaf is mid's child. leaf registers while mid has
     * no router; when top attaches, mid escalates leaf's command too. */
    tu_result_t res = {0};
    ASSERT_OK(uv_loop_init(&loop));
    cmdipc_registry_t *top = tu_registry(&loop, "top", NULL);
    cmdipc_registry_t *mid = tu_registry(&loop, "mid", "top");
    cmdipc_registry_t *leaf = tu_registry(&loop, "leaf", "mid");
    tu_link(mid, leaf);
    tu_settle(&loop);
    tu_register(&loop, leaf, "leaf.echo", tu_echo_fn, NULL);
    ASSERT(tu_has_command(mid, "leaf.echo"));
    ASSERT(!tu_has_command(top, "leaf.echo"));
    tu_link(top, mid);
    tu_settle(&loop);
    ASSERT(tu_has_command(top, "leaf.echo"));
    ASSERT_OK(tu_call(&loop, top, "leaf.echo", "{}", &res));
    /* The link drops and comes back: escalated again. */
    ASSERT_OK(cmdipc_channel_close(cmdipc_registry_channel(top, "mid")));
    tu_settle(&loop);
    ASSERT(!tu_has_command(top, "leaf.echo"));
    tu_link(top, mid);
    tu_settle(&loop);
    ASSERT(tu_has_command(top, "leaf.echo"));
    ASSERT_OK(tu_call(&loop, top, "leaf.echo", "{}", &res));
    tu_result_clear(&res);
    tu_close_all(&loop, top, mid, leaf, NULL);
}

TEST_LIST_BEGIN
TEST_ENTRY(grandchild_command_is_registered_up_to_root)
TEST_ENTRY(root_executes_command_on_grandchild)
TEST_ENTRY(sibling_branch_executes_grandchild_through_root)
TEST_ENTRY(grandchild_executes_sibling_branch_through_parent_chain)
TEST_ENTRY(duplicate_command_registration_fails_across_tree)
TEST_ENTRY(events_propagate_through_tree_with_peer_links_exactly_once)
TEST_ENTRY(events_from_worker3_reach_all_processes_exactly_once)
TEST_ENTRY(worker3_executes_grandchild_command_via_the_tree)
TEST_ENTRY(worker3_registers_and_grandchild_executes_it)
TEST_ENTRY(command_not_found_at_root)
TEST_ENTRY(command_not_found_travels_back_to_grandchild)
TEST_ENTRY(late_joiner_learns_peer_commands_by_list_exchange)
TEST_ENTRY(commands_registered_before_router_attach_are_escalated)
TEST_ENTRY(router_reattach_reescalates_and_children_commands_travel_up)
TEST_LIST_END
