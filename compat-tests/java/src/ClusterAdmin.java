import java.util.Collection;
import java.util.HashSet;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ClientMetricsResourceListing;
import org.apache.kafka.clients.admin.ListConfigResourcesOptions;
import org.apache.kafka.common.TopicPartitionReplica;
import org.apache.kafka.common.config.ConfigResource;

/**
 * Admin calls no console tool makes on its own, as the stock Java AdminClient makes them.
 *
 * Usage: ClusterAdmin BOOTSTRAP COMMAND...
 *
 * Each COMMAND is one argument, its words separated by spaces; the output of each starts
 * with a line `== COMMAND`:
 *   "list [TYPE...]"       ListConfigResources (KIP-1142); prints `TYPE NAME` per resource, in
 *                          the broker's order. TYPE is a ConfigResource.Type name (TOPIC, ...).
 *   "client-metrics"       listClientMetricsResources (KIP-714); prints names, then `COUNT n`.
 *   "move TOPIC PARTITION BROKER DIR"
 *                          AlterReplicaLogDirs; prints `OK` or the simple name of the
 *                          exception the broker's error maps to.
 */
public class ClusterAdmin {
    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: ClusterAdmin BOOTSTRAP COMMAND...");
            System.exit(2);
        }
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        try (Admin admin = Admin.create(props)) {
            for (int c = 1; c < args.length; c++) {
                System.out.println("== " + args[c]);
                run(admin, args[c].split(" "));
            }
        }
    }

    private static void run(Admin admin, String[] args) throws Exception {
        switch (args[0]) {
            case "list": {
                Set<ConfigResource.Type> types = new HashSet<>();
                for (int i = 1; i < args.length; i++) {
                    types.add(ConfigResource.Type.valueOf(args[i]));
                }
                Collection<ConfigResource> resources =
                    admin.listConfigResources(types, new ListConfigResourcesOptions()).all().get();
                for (ConfigResource r : resources) {
                    System.out.println(r.type() + " " + r.name());
                }
                break;
            }
            case "client-metrics": {
                @SuppressWarnings("removal")
                Collection<ClientMetricsResourceListing> listings = admin.listClientMetricsResources().all().get();
                for (ClientMetricsResourceListing l : listings) {
                    System.out.println(l.name());
                }
                System.out.println("COUNT " + listings.size());
                break;
            }
            case "move": {
                TopicPartitionReplica replica = new TopicPartitionReplica(
                    args[1], Integer.parseInt(args[2]), Integer.parseInt(args[3]));
                try {
                    admin.alterReplicaLogDirs(Map.of(replica, args[4])).all().get();
                    System.out.println("OK");
                } catch (ExecutionException e) {
                    System.out.println(e.getCause().getClass().getSimpleName());
                }
                break;
            }
            default:
                System.err.println("unknown command " + args[0]);
                System.exit(2);
        }
    }
}
