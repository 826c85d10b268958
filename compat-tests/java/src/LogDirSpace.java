import java.util.Collections;
import java.util.Map;
import java.util.Properties;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.LogDirDescription;

/**
 * The log directories of one broker as the stock Java AdminClient describes them
 * (DescribeLogDirs v4, KIP-827: the volume's total and usable bytes).
 *
 * Usage: LogDirSpace BOOTSTRAP BROKER_ID
 *
 * Prints one line per log dir: `DIR TOTAL_BYTES USABLE_BYTES PARTITIONS` (-1 for a size the
 * broker did not give); exits non-zero with the reason on failure.
 */
public class LogDirSpace {
    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: LogDirSpace BOOTSTRAP BROKER_ID");
            System.exit(2);
        }
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        int broker = Integer.parseInt(args[1]);
        try (Admin admin = Admin.create(props)) {
            Map<String, LogDirDescription> dirs =
                admin.describeLogDirs(Collections.singleton(broker)).allDescriptions().get().get(broker);
            for (Map.Entry<String, LogDirDescription> dir : dirs.entrySet()) {
                LogDirDescription d = dir.getValue();
                if (d.error() != null) {
                    System.err.println(dir.getKey() + ": " + d.error());
                    System.exit(1);
                }
                System.out.println(dir.getKey() + " " + d.totalBytes().orElse(-1) + " " + d.usableBytes().orElse(-1)
                    + " " + d.replicaInfos().size());
            }
        }
    }
}
